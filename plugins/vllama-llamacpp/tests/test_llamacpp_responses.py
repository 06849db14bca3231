"""OpenAI's Responses API on llama.cpp: the ``openai`` client's ``responses.create`` with a
function tool, whole and streamed, against ``vllama serve`` on Qwen2.5-Coder-0.5B-Instruct
(GGUF) at temperature 0."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from vllama.testing.hf_models import qwen_coder_gguf
from vllama.testing.server import ServerProcess, create_model
from vllama.testing.tool_calling import ANSWER_SYSTEM, MODEL, RESULT, TIMEOUT, WEATHER

#: The tool in the Responses API's flat shape.
WEATHER_TOOL: Any = {"type": "function", **WEATHER["function"]}
ASK = "What is the weather in Paris?"


@pytest.fixture(scope="module")
def oai(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    with ServerProcess(tmp_path_factory.mktemp("responses") / "models") as server:
        create_model(server.url, MODEL, qwen_coder_gguf(), parameters={"num_thread": 1, "num_ctx": 2048})
        yield openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=TIMEOUT)


def test_function_call_round_trip(oai: openai.OpenAI) -> None:
    first = oai.responses.create(model=MODEL, input=ASK, tools=[WEATHER_TOOL], temperature=0, max_output_tokens=64)
    assert first.status == "completed"
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert calls[0].call_id and first.output_text == ""
    assert first.usage is not None and first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    history: Any = [
        {"role": "user", "content": ASK},
        *(item.model_dump(exclude_none=True) for item in first.output),
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": RESULT},
    ]
    final = oai.responses.create(
        model=MODEL,
        instructions=ANSWER_SYSTEM,
        input=history,
        tools=[WEATHER_TOOL],
        tool_choice="none",
        temperature=0,
        max_output_tokens=64,
    )
    assert [item.type for item in final.output] == ["message"]
    assert "22" in final.output_text and "Paris" in final.output_text


def test_streamed_function_call(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model=MODEL, input=ASK, tools=[WEATHER_TOOL], temperature=0, max_output_tokens=64, stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments) for e in done] == [{"city": "Paris"}]
    final = events[-1].response
    assert [(i.type, getattr(i, "name", None)) for i in final.output] == [("function_call", "get_weather")]


def test_streamed_text_matches_the_whole_response(oai: openai.OpenAI) -> None:
    asked = {"model": MODEL, "input": "Name the capital of France in one word.", "temperature": 0, "max_output_tokens": 16}
    whole = oai.responses.create(**asked)
    with oai.responses.stream(**asked) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        streamed = stream.get_final_response()
    assert whole.output_text and "Paris" in whole.output_text
    assert "".join(deltas) == streamed.output_text == whole.output_text
