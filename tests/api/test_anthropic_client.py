"""The official ``anthropic`` client against ``vllama serve`` (echo backend): /v1/messages."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllama.server import anthropic_convert as convert
from vllama.server import anthropic_wire as a
from vllama.testing.server import ServerProcess

TOOL = {"name": "lookup", "description": "Look a word up", "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}}}


#: The echo model thinks unless told not to, as a thinking model does in Ollama.
OFF: Any = {"type": "disabled"}


@pytest.fixture(scope="module")
def client(echo_server: ServerProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=echo_server.url, api_key="unused")


def test_a_message(client: anthropic.Anthropic) -> None:
    m = client.messages.create(model="echo", max_tokens=100, thinking=OFF, messages=[{"role": "user", "content": "hi there"}])
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_") and m.model == "echo"
    assert [b.type for b in m.content] == ["text"] and m.content[0].text == "hi there"
    assert m.stop_reason == "end_turn" and m.usage.input_tokens == 2 and m.usage.output_tokens == 2


def test_max_tokens_ends_the_reply_with_max_tokens(client: anthropic.Anthropic) -> None:
    m = client.messages.create(model="echo", max_tokens=2, thinking=OFF, messages=[{"role": "user", "content": "a b c d"}])
    assert m.content[0].text == "a b " and m.stop_reason == "max_tokens"


def test_stop_sequences_and_a_system_prompt_in_blocks(client: anthropic.Anthropic) -> None:
    m = client.messages.create(
        model="echo",
        max_tokens=50,
        thinking=OFF,
        system=[{"type": "text", "text": "Be brief."}],
        stop_sequences=["c"],
        messages=[{"role": "user", "content": [{"type": "text", "text": "a b "}, {"type": "text", "text": "c d"}]}],
    )
    assert m.content[0].text == "a b "


def test_streaming_text(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="echo", max_tokens=100, thinking=OFF, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "one two three" and final.content[0].text == "one two three"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 3


def test_the_stream_is_anthropics_event_sequence(echo_server: ServerProcess) -> None:
    body = {
        "model": "echo",
        "max_tokens": 20,
        "stream": True,
        "messages": [{"role": "user", "content": "x y"}],
        "tools": [TOOL],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    r = httpx.post(echo_server.url + "/v1/messages", json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1].removeprefix("data: ")))
        for block in r.text.strip().split("\n\n")
    ]
    assert all(name == data["type"] for name, data in events)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",  # thinking
        "content_block_start",
        "content_block_delta",
        "content_block_stop",  # the tool call
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",  # text
        "message_delta",
        "message_stop",
    ]
    blocks = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert [b["type"] for b in blocks] == ["thinking", "tool_use", "text"]
    assert [data["index"] for name, data in events if name == "content_block_start"] == [0, 1, 2]
    assert json.loads(events[6][1]["delta"]["partial_json"]) == {"text": "x y"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use" and events[-2][1]["usage"]["output_tokens"] == 2


def test_a_tool_call_and_its_result(client: anthropic.Anthropic) -> None:
    question = {"role": "user", "content": "define x"}
    m = client.messages.create(model="echo", max_tokens=100, thinking=OFF, tools=[TOOL], messages=[question])
    use = next(b for b in m.content if b.type == "tool_use")
    assert m.stop_reason == "tool_use" and use.name == "lookup" and use.input == {"text": "define x"} and use.id.startswith("toolu_")
    answer = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "x is a letter"}, {"type": "text", "text": "thanks"}],
    }
    m = client.messages.create(
        model="echo", max_tokens=100, thinking=OFF, messages=[question, {"role": "assistant", "content": m.content}, answer]
    )
    assert m.content[0].text == "thanks"


def test_tool_choice_none_offers_no_tools(client: anthropic.Anthropic) -> None:
    m = client.messages.create(
        model="echo", max_tokens=100, thinking=OFF, tools=[TOOL], tool_choice={"type": "none"}, messages=[{"role": "user", "content": "hi"}]
    )
    assert [b.type for b in m.content] == ["text"] and m.stop_reason == "end_turn"


def test_thinking_comes_back_as_a_thinking_block(client: anthropic.Anthropic) -> None:
    m = client.messages.create(
        model="echo", max_tokens=100, thinking={"type": "enabled", "budget_tokens": 1024}, messages=[{"role": "user", "content": "a b c"}]
    )
    assert [b.type for b in m.content] == ["thinking", "text"] and m.content[0].thinking == "The user said 3 words."


def test_thinking_asked_of_a_model_that_cannot_think_is_ignored(echo_server: ServerProcess) -> None:
    """As in Ollama: Claude Code asks every model to think."""
    created = httpx.post(
        echo_server.url + "/api/create", json={"model": "plain", "from": "echo", "template": "{{ .Prompt }}", "stream": False}
    )
    assert created.status_code == 200, created.text
    body = {"model": "plain", "max_tokens": 10, "thinking": {"type": "enabled"}, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(echo_server.url + "/v1/messages", json=body)
    assert r.status_code == 200 and [b["type"] for b in r.json()["content"]] == ["text"]


def test_count_tokens(client: anthropic.Anthropic) -> None:
    n = client.messages.count_tokens(model="echo", messages=[{"role": "user", "content": "x" * 400}])
    assert 100 <= n.input_tokens <= 110


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "echo", "messages": [{"role": "user", "content": "x"}]}, 400, "max_tokens is required and must be positive"),
        ({"model": "echo", "max_tokens": 5, "messages": []}, 400, "messages is required"),
        ({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, 404, "model 'nope' not found"),
        ({"model": "echo", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}, 400, "invalid role"),
        (
            {
                "model": "echo",
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "http://example.com/a.png"}}]}
                ],
            },
            400,
            "Only base64 images",
        ),
        (
            {
                "model": "echo",
                "max_tokens": 5,
                "messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}],
            },
            400,
            "missing required 'id'",
        ),
        (
            {
                "model": "echo",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"name": "web_search", "type": "web_search_20250305"}],
            },
            400,
            "unsupported tool type",
        ),
        (
            {
                "model": "echo",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tool_choice": {"type": "tool", "name": "f"},
            },
            400,
            "not in tools",
        ),
        ({"model": "echo", "max_tokens": "many", "messages": []}, 400, "Expected `int`"),
    ],
)
def test_bad_requests_are_anthropic_errors(echo_server: ServerProcess, body: dict, status: int, message: str) -> None:
    r = httpx.post(echo_server.url + "/v1/messages", json=body)
    assert r.status_code == status, r.text
    error = r.json()
    assert error["type"] == "error" and message in error["error"]["message"]
    assert error["error"]["type"] == ("not_found_error" if status == 404 else "invalid_request_error")


def test_the_client_raises_its_own_error_types(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.messages.create(model="echo", max_tokens=0, messages=[{"role": "user", "content": "x"}])


def test_an_image_block_reaches_the_request() -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    body = a.MessagesBody(
        model="m",
        max_tokens=5,
        messages=[
            a.MessageParam(
                role="user",
                content=[
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                    {"type": "text", "text": "what?"},
                ],
            )
        ],
    )
    [message] = convert.messages_of(body)
    assert message.images == [b"\x89PNG fake"] and message.content == "what?"


blocks = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=20)),
    st.builds(
        lambda i, n: {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": {"k": i}}, st.integers(0, 9), st.sampled_from(["f", "g"])
    ),
    st.builds(lambda i, t: {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": t}, st.integers(0, 9), st.text(max_size=20)),
    st.builds(lambda t: {"type": "thinking", "thinking": t, "signature": ""}, st.text(min_size=1, max_size=20)),
    st.just({"type": "redacted_thinking", "data": "xyz"}),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["user", "assistant"]), st.lists(blocks, max_size=5)), max_size=6))
def test_every_block_lands_in_exactly_one_place(turns: list[tuple[str, list[dict]]]) -> None:
    """Text, calls, results and thinking are kept whole and in order; nothing else appears."""
    body = a.MessagesBody(model="m", max_tokens=5, messages=[a.MessageParam(role=r, content=b) for r, b in turns])
    messages = convert.messages_of(body)
    for role, content in turns:
        expected_text = "".join(b["text"] for b in content if b["type"] == "text")
        calls = [b["id"] for b in content if b["type"] == "tool_use"]
        results = [b["content"] for b in content if b["type"] == "tool_result"]
        for result in results:
            tool = messages.pop(0)
            assert tool.role == "tool" and tool.content == result
        if expected_text or calls or any(b["type"] == "thinking" for b in content):
            m = messages.pop(0)
            assert m.role == role and m.content == expected_text and [c.id for c in m.tool_calls] == calls
    assert messages == []


def test_a_thinking_model_thinks_unless_told_not_to(client: anthropic.Anthropic) -> None:
    """As in Ollama, where the Messages API leaves think unset: the model's default."""
    m = client.messages.create(model="echo", max_tokens=100, messages=[{"role": "user", "content": "a b"}])
    assert [b.type for b in m.content] == ["thinking", "text"] and m.content[1].text == "a b"
