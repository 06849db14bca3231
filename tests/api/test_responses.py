"""OpenAI's Responses API (``POST /v1/responses``) against ``vllama serve`` on the echo backend,
with the official ``openai`` client: the whole response, the stream of named events, input
items, tools, and errors in OpenAI's format."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from vllama.testing.server import ServerProcess, create_model

#: The echo model thinks unless told not to, as a thinking model does in Ollama.
NO_THINKING: Any = {"effort": "none"}
LOOKUP: Any = {"type": "function", "name": "lookup", "description": "Look it up", "parameters": {"type": "object", "properties": {}}}


@pytest.fixture(scope="module")
def client(echo_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=echo_server.url + "/v1", api_key="unused")


def sse(echo_server: ServerProcess, **body: Any) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of a streamed response, read off the wire."""
    with httpx.stream(
        "POST", echo_server.url + "/v1/responses", json={"model": "echo", "stream": True, "reasoning": NO_THINKING, **body}, timeout=30
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        blocks = r.read().decode().strip().split("\n\n")
    out = []
    for block in blocks:
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def test_whole_response(client: openai.OpenAI) -> None:
    r = client.responses.create(model="echo", input="hi there", instructions="be brief", temperature=0, reasoning=NO_THINKING)
    assert r.object == "response" and r.id.startswith("resp_") and r.status == "completed"
    assert r.output_text == "hi there" and r.model == "echo" and r.instructions == "be brief"
    (message,) = r.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (2, 2, 4)
    assert r.temperature == 0 and r.store is False and r.previous_response_id is None and r.completed_at


def test_stream_events_in_order(echo_server: ServerProcess) -> None:
    events = sse(echo_server, input="a b c")
    names = [name for name, _ in events]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [data["type"] for _, data in events] == names
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert "".join(d["delta"] for n, d in events if n == "response.output_text.delta") == "a b c"
    final = events[-1][1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == "a b c"
    assert events[0][1]["response"]["status"] == "in_progress" and events[0][1]["response"]["output"] == []


def test_client_stream_helper_accepts_the_events(client: openai.OpenAI) -> None:
    """The client's own stream state machine checks item identities and order."""
    with client.responses.stream(model="echo", input="one two", tools=[LOOKUP], reasoning={"effort": "low"}) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [item.type for item in final.output] == ["reasoning", "function_call", "message"]
    assert final.output_text == "one two"


def test_function_call_and_reasoning_items(client: openai.OpenAI) -> None:
    r = client.responses.create(model="echo", input="x", tools=[LOOKUP], reasoning={"effort": "high"})
    reasoning, call, message = r.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "The user said 1 words."
    assert reasoning.encrypted_content == "The user said 1 words."
    assert call.type == "function_call" and call.name == "lookup" and json.loads(call.arguments) == {"text": "x"}
    assert call.call_id and call.status == "completed" and call.id and call.id.startswith("fc_")
    assert message.type == "message" and r.output_text == "x"
    assert r.tools[0].type == "function" and r.tools[0].name == "lookup"
    assert r.reasoning is not None and r.reasoning.effort == "high"


def test_streamed_function_call_events(echo_server: ServerProcess) -> None:
    events = sse(echo_server, input="x", tools=[LOOKUP])
    names = [n for n, _ in events]
    start = names.index("response.function_call_arguments.delta") - 1
    assert names[start : start + 4] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    added, delta, done, item_done = (d for _, d in events[start : start + 4])
    assert added["item"]["type"] == "function_call" and added["item"]["arguments"] == "" and added["output_index"] == 0
    assert json.loads(delta["delta"]) == {"text": "x"} and done["arguments"] == delta["delta"]
    assert item_done["item"]["status"] == "completed" and item_done["item"]["call_id"] == added["item"]["call_id"]
    assert delta["item_id"] == added["item"]["id"]


def test_streamed_reasoning_events(echo_server: ServerProcess) -> None:
    events = sse(echo_server, input="x y", reasoning={"effort": "medium"})
    names = [n for n, _ in events]
    assert names[2:8] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    assert events[4][1]["delta"] == "The user said 2 words." and events[7][1]["item"]["encrypted_content"] == "The user said 2 words."
    assert events[8][1]["output_index"] == 1  # the message comes next


def test_max_output_tokens_makes_an_incomplete_response(client: openai.OpenAI, echo_server: ServerProcess) -> None:
    r = client.responses.create(model="echo", input="a b c d", max_output_tokens=2, reasoning=NO_THINKING)
    assert r.status == "incomplete" and r.incomplete_details is not None and r.incomplete_details.reason == "max_output_tokens"
    assert r.output_text == "a b " and r.output[0].status == "incomplete" and r.max_output_tokens == 2
    events = sse(echo_server, input="a b c d", max_output_tokens=2)
    assert events[-1][0] == "response.incomplete" and events[-1][1]["response"]["status"] == "incomplete"


def test_text_format_json(client: openai.OpenAI) -> None:
    r = client.responses.create(model="echo", input="x", text={"format": {"type": "json_object"}})
    assert json.loads(r.output_text) == {"echo": "x"}
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}}
    r = client.responses.create(model="echo", input="y", text={"format": {"type": "json_schema", "name": "e", "schema": schema}})
    assert json.loads(r.output_text) == {"echo": "y"} and r.text is not None and r.text.format is not None
    assert r.text.format.type == "json_schema"


def test_input_items_replay_a_tool_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(model="echo", input=[{"role": "user", "content": "find it"}], tools=[LOOKUP], reasoning=NO_THINKING)
    call = next(item for item in first.output if item.type == "function_call")
    history: Any = [
        {"role": "developer", "content": "answer briefly"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "find it"}]},
        call,  # an output item, as the client returned it
        {"type": "function_call_output", "call_id": call.call_id, "output": "found"},
        {"role": "user", "content": [{"type": "input_text", "text": "thanks, "}, {"type": "input_text", "text": "bye"}]},
    ]
    r = client.responses.create(model="echo", input=history, tool_choice="none", tools=[LOOKUP], reasoning=NO_THINKING)
    assert [item.type for item in r.output] == ["message"] and r.output_text == "thanks, bye"


def test_images_reach_the_capability_check(client: openai.OpenAI) -> None:
    """A data-URL image becomes an image of the message, which the echo backend cannot see."""
    url = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    part: Any = {"type": "input_image", "image_url": url, "detail": "auto"}
    with pytest.raises(openai.BadRequestError, match="does not support images"):
        client.responses.create(model="echo", input=[{"role": "user", "content": [{"type": "input_text", "text": "see"}, part]}])


def test_tool_choice_named_and_allowed(client: openai.OpenAI) -> None:
    other: Any = {**LOOKUP, "name": "other"}
    r = client.responses.create(model="echo", input="x", tools=[LOOKUP, other], tool_choice={"type": "function", "name": "other"})
    assert [item.name for item in r.output if item.type == "function_call"] == ["other"]
    allowed: Any = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "other"}]}
    r = client.responses.create(model="echo", input="x", tools=[LOOKUP, other], tool_choice=allowed)
    assert [item.name for item in r.output if item.type == "function_call"] == ["other"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}]}, "unsupported input item type 'web_search_call'"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item references need stored responses"),
        ({"input": "x", "tools": [{"type": "web_search"}]}, "tool type 'web_search' is not supported"),
        ({"input": "x", "tools": [{"type": "file_search", "vector_store_ids": []}]}, "tool type 'file_search' is not supported"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "file inputs are not supported"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]}, "base64 data URLs"),
        ({"input": [{"role": "tool", "content": "x"}]}, "invalid role 'tool'"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}]}, "JSON object string"),
        ({"input": [{"type": "function_call", "name": "f"}]}, "invalid input[0]: Object missing required field `call_id`"),
        ({"input": [{"content": "x"}]}, "input[0]: an input item needs a type"),
        ({}, "Missing required parameter: 'input'."),
        ({"input": "x", "reasoning": {"effort": "huge"}}, "invalid reasoning.effort 'huge'"),
        ({"input": "x", "text": {"format": {"type": "yaml"}}}, "invalid text.format type 'yaml'"),
        ({"input": "x", "tool_choice": {"type": "web_search_preview"}}, "tool_choice type 'web_search_preview' is not supported"),
        ({"input": "x", "tools": [LOOKUP], "tool_choice": {"type": "function", "name": "nope"}}, "not in tools"),
        ({"input": "x", "temperature": 3}, "Invalid 'temperature'"),
        ({"input": "x", "max_output_tokens": 0}, "Invalid 'max_output_tokens'"),
    ],
)
def test_bad_requests_are_400s_in_openai_format(echo_server: ServerProcess, body: dict[str, Any], message: str) -> None:
    r = httpx.post(echo_server.url + "/v1/responses", json={"model": "echo", **body}, timeout=30)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert message in error["message"] and error["type"] == "invalid_request_error"


def test_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model="missing", input="x")
    assert e.value.body["message"] == "model 'missing' not found"


def test_stateless_previous_response_id_is_ignored(client: openai.OpenAI, echo_server: ServerProcess) -> None:
    """As in Ollama: nothing is stored, so ``previous_response_id`` adds nothing to the input
    (and the log says it was ignored)."""
    first = client.responses.create(model="echo", input="remember this", store=True)
    r = client.responses.create(model="echo", input="what did I say", previous_response_id=first.id)
    assert r.output_text == "what did I say" and r.previous_response_id is None and r.store is False
    assert 'ignoring unknown field "previous_response_id" in /v1/responses' in echo_server.log()


def test_an_engine_failure_mid_stream_ends_with_response_failed(
    tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess]
) -> None:
    with echo_server_with(tmp_path) as server:
        parameters = {"backend": "echo-isolated", "echo_allow_crash": True, "echo_delay": 0.05}
        create_model(server.url, "fragile", tiny_gguf, parameters=parameters)
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
        events = list(client.responses.create(model="fragile", input="one two #crash three", stream=True, reasoning=NO_THINKING))
        assert [e.type for e in events][-3:] == ["response.output_text.delta", "response.output_text.delta", "response.failed"]
        failed = events[-1]
        assert failed.type == "response.failed" and failed.sequence_number == len(events) - 1
        assert failed.response.status == "failed" and failed.response.error is not None
        assert "stopped unexpectedly" in failed.response.error.message
        assert failed.response.output[0].type == "message" and failed.response.output[0].status == "in_progress"
        assert failed.response.output_text == "one two "
