"""vLLM's own tool parsers, fed as the engine feeds them (one token's text at a time) with the
real Qwen2.5-Coder tokenizer, and the core's catch of bare JSON behind them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from vllama.testing.hf_models import qwen_coder_safetensors
from vllama.thinking import HARMONY, THINK
from vllama.tool_calls import parse_tool_calls, request_parser
from vllama.types import ChatRequest, Delta, Done, Event, Message, ModelRef, Tool
from vllama_vllm.backend import VllmBackend
from vllama_vllm.tool_parsing import VllmParsing, parsing_for, reasoning_name, reasoning_registered, registered, vllm_name

pytestmark = pytest.mark.engine

TOOLS = msgspec.convert(
    [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
        for name in ("get_weather", "get_time")
    ],
    list[Tool],
)
PARIS = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
ROME = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from vllm.tokenizers import get_tokenizer

    return get_tokenizer(str(qwen_coder_safetensors()))


def request(fmt: str, *, parallel: bool = True) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="hi")], tools=TOOLS, tool_format=fmt, parallel_tool_calls=parallel)


def token_pieces(tokenizer: Any, text: str) -> list[tuple[str, list[int]]]:
    """The text one token at a time, as vLLM's detokenizer streams it."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces, before = [], ""
    for i in range(len(ids)):
        now = tokenizer.decode(ids[: i + 1])
        pieces.append((now[len(before) :], ids[i : i + 1]))
        before = now
    return pieces


def feed(tokenizer: Any, calls: VllmParsing, text: str) -> tuple[str, list[tuple[str, dict, int]]]:
    pieces = token_pieces(tokenizer, text)
    out, got = [], []
    for n, (piece, ids) in enumerate(pieces):
        parsed = calls.feed(piece, ids, [1, 2, 3], finished=n == len(pieces) - 1)
        out.append(parsed.text)
        got += [(c.function.name, c.function.arguments, c.function.index) for c in parsed.calls]
    return "".join(out), got


def parser(tokenizer: Any, fmt: str, *, parallel: bool = True) -> VllmParsing:
    calls = parsing_for(tokenizer, request(fmt, parallel=parallel), None)
    assert calls is not None
    return calls


def test_the_cores_formats_map_to_vllms_parsers() -> None:
    assert {vllm_name(f) for f in ("hermes", "llama3", "mistral")} <= registered()
    assert vllm_name("json") is None and vllm_name("qwen3_coder") == "qwen3_coder"


def test_hermes_calls_with_text_before_them(tokenizer: Any) -> None:
    text, calls = feed(tokenizer, parser(tokenizer, "hermes"), "Let me check.\n" + PARIS + "\n" + ROME)
    assert text.strip() == "Let me check."
    assert calls == [("get_weather", {"city": "Paris"}, 0), ("get_weather", {"city": "Rome"}, 1)]


def test_one_call_without_parallel_calls(tokenizer: Any) -> None:
    _, calls = feed(tokenizer, parser(tokenizer, "hermes", parallel=False), PARIS + "\n" + ROME)
    assert calls == [("get_weather", {"city": "Paris"}, 0)]


def test_prose_is_prose(tokenizer: Any) -> None:
    assert feed(tokenizer, parser(tokenizer, "hermes"), "Paris is sunny today.") == ("Paris is sunny today.", [])


def test_a_format_only_vllm_knows(tokenizer: Any) -> None:
    assert feed(tokenizer, parser(tokenizer, "pythonic"), '[get_weather(city="Paris"), get_time(city="Rome")]')[1] == [
        ("get_weather", {"city": "Paris"}, 0),
        ("get_time", {"city": "Rome"}, 1),
    ]


def test_a_parser_the_tokenizer_cannot_serve_leaves_calls_to_the_core(tokenizer: Any) -> None:
    assert parsing_for(tokenizer, request("llama3"), None) is None  # Qwen's vocabulary has no <|python_tag|>
    assert parsing_for(tokenizer, request("json"), None) is None


async def _events(pieces: list[tuple[str, list[int]]], calls: VllmParsing) -> AsyncIterator[Event]:
    for n, (piece, ids) in enumerate(pieces):
        parsed = calls.feed(piece, ids, [1, 2, 3], finished=n == len(pieces) - 1)
        if parsed.text or parsed.calls:
            yield Delta(text=parsed.text, tool_calls=parsed.calls)
    yield Done(reason="stop")


@pytest.mark.parametrize("reply", [PARIS, '{"name": "get_weather", "arguments": {"city": "Paris"}}'])
def test_behind_vllms_parser_the_core_catches_bare_json(tokenizer: Any, reply: str) -> None:
    """Small models drop the tags their template asks for; vLLM's parser leaves that as text."""
    req = request("hermes")

    async def run() -> list[Event]:
        events = _events(token_pieces(tokenizer, reply), parser(tokenizer, "hermes"))
        return [e async for e in parse_tool_calls(events, request_parser(req, lenient_only=True))]

    deltas = [e for e in asyncio.run(run()) if isinstance(e, Delta)]
    calls = [(c.function.name, c.function.arguments) for d in deltas for c in d.tool_calls]
    assert calls == [("get_weather", {"city": "Paris"})]
    assert "".join(d.text for d in deltas).strip() == ""


# -- reasoning -------------------------------------------------------------------------------


def reasoning(tokenizer: Any, text: str, prompt: str, *, tools: bool = False) -> tuple[str, str, list[tuple[str, dict, int]]]:
    """``text`` fed token by token through vLLM's qwen3 reasoning parser after ``prompt``."""
    req = request("hermes") if tools else ChatRequest(messages=[Message(role="user", content="hi")])
    req.think = True
    parsing = parsing_for(tokenizer, req, "qwen3")
    assert parsing is not None and parsing.parser.reasoning_parser is not None
    pieces, prompt_ids = token_pieces(tokenizer, text), tokenizer.encode(prompt, add_special_tokens=False)
    thinking, answer, calls = [], [], []
    for n, (piece, ids) in enumerate(pieces):
        parsed = parsing.feed(piece, ids, prompt_ids, finished=n == len(pieces) - 1)
        thinking.append(parsed.thinking)
        answer.append(parsed.text)
        calls += [(c.function.name, c.function.arguments, c.function.index) for c in parsed.calls]
    return "".join(thinking), "".join(answer), calls


def test_vllms_reasoning_parser_splits_thinking_when_the_prompt_opened_it(tokenizer: Any) -> None:
    thinking, answer, _ = reasoning(tokenizer, "10 times 4 is 40.\n</think>\n\n40.", "<|im_start|>assistant\n<think>\n")
    assert (thinking.strip(), answer) == ("10 times 4 is 40.", "40.")


def test_vllms_reasoning_parser_with_a_tool_call_after_thinking(tokenizer: Any) -> None:
    thinking, answer, calls = reasoning(tokenizer, "<think>I need the weather.</think>\n" + PARIS, "<|im_start|>assistant\n", tools=True)
    assert thinking.strip() == "I need the weather." and answer.strip() == ""
    assert calls == [("get_weather", {"city": "Paris"}, 0)]


def test_no_reasoning_parser_unless_the_request_thinks(tokenizer: Any) -> None:
    assert parsing_for(tokenizer, ChatRequest(messages=[Message(role="user", content="hi")], think=False), "qwen3") is None
    assert "qwen3" in reasoning_registered() and "openai_gptoss" in reasoning_registered()


def test_the_reasoning_parser_comes_from_the_modelfile_or_the_template() -> None:
    ref = ModelRef(name="m", format="safetensors", path="")
    assert (reasoning_name(ref, THINK), reasoning_name(ref, HARMONY), reasoning_name(ref, None)) == ("qwen3", "openai_gptoss", None)
    ref.parameters = {"reasoning_parser": "deepseek_r1"}
    assert reasoning_name(ref, THINK) == "deepseek_r1"
    assert {"qwen3", "deepseek_r1"} <= set(VllmBackend.reasoning_parsers())
