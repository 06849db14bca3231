"""mlx-lm's own tool parsers in the core's stream parser: the markers and readers of its formats,
the parser mlx-lm infers from the real Qwen2.5-Coder tokenizer, and text fed in small pieces."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from vllama.testing.hf_models import qwen_coder_safetensors
from vllama.types import ChatRequest, Message, ModelRef, Tool
from vllama_mlx.backend import MlxBackend
from vllama_mlx.tool_parsing import available, module_name, parser_for

TOOLS = msgspec.convert(
    [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
        for name in ("get_weather", "get_time")
    ],
    list[Tool],
)


def request(fmt: str = "hermes", *, parallel: bool = True) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="hi")], tools=TOOLS, tool_format=fmt, parallel_tool_calls=parallel)


def ref(**parameters: Any) -> ModelRef:
    return ModelRef(name="qwen", format="safetensors", path="", parameters=parameters)


def run(name: str | None, text: str, *, step: int = 3, parallel: bool = True) -> tuple[str, list[tuple[str, dict]]]:
    parser = parser_for(name, request(parallel=parallel))
    out, calls = [], []
    for i in range(0, len(text), step):
        emitted, found = parser.feed(text[i : i + step])
        out.append(emitted)
        calls += found
    emitted, found = parser.flush()
    return "".join(out) + emitted, [(c.function.name, c.function.arguments) for c in calls + found]


def test_the_backend_lists_mlx_lms_parsers() -> None:
    assert {"json_tools", "qwen3_coder", "pythonic", "mistral"} <= MlxBackend.tool_parsers() == available()


def test_mlx_lm_infers_its_parser_from_the_qwen_template() -> None:
    from mlx_lm.tokenizer_utils import load

    tokenizer = load(qwen_coder_safetensors())
    assert module_name(ref(), tokenizer, "hermes") == "json_tools"
    assert module_name(ref(tool_parser="qwen3_coder"), tokenizer, "hermes") == "qwen3_coder"
    assert module_name(ref(tool_parser="llama3"), tokenizer, "llama3") is None  # mlx-lm has none: the core parses


def test_json_tools_with_text_around() -> None:
    text = 'Let me check. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    assert run("json_tools", text) == ("Let me check. ", [("get_weather", {"city": "Paris"})])


def test_qwen3_coder_xml_calls() -> None:
    text = "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>"
    assert run("qwen3_coder", text)[1] == [("get_weather", {"city": "Paris"})]


def test_pythonic_calls_one_without_parallel_calls() -> None:
    text = '<|tool_call_start|>[get_weather(city="Paris"), get_time(city="Rome")]<|tool_call_end|>'
    assert run("pythonic", text)[1] == [("get_weather", {"city": "Paris"}), ("get_time", {"city": "Rome"})]
    assert run("pythonic", text, parallel=False)[1] == [("get_weather", {"city": "Paris"})]


def test_a_bare_json_reply_is_still_a_call() -> None:
    assert run("json_tools", '{"name": "get_time", "arguments": {"city": "Rome"}}')[1] == [("get_time", {"city": "Rome"})]


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "launch_rockets", "arguments": {}}\n</tool_call>',  # not an offered tool
        "<tool_call>\nnot json\n</tool_call>",
        "The weather is fine.",
    ],
)
def test_what_does_not_parse_stays_text(text: str) -> None:
    assert run("json_tools", text) == (text, [])
