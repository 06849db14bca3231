"""The Responses API's translation, property-tested: input items round-trip into the core's
messages, and any sequence of engine events becomes stream events that the ``openai``
client's own types and stream state machine accept, ending in the whole response."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from vllama.errors import BadRequest
from vllama.server import responses_convert as convert
from vllama.server import responses_wire as r
from vllama.types import Delta, Done, Message, SamplingOptions, ToolCall, ToolCallFunction

TEXT = st.text(max_size=12)
WORDS = st.text(min_size=1, max_size=12)
NAMES = st.from_regex(r"[a-z][a-z_]{0,7}", fullmatch=True)
ARGUMENTS = st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), st.text(max_size=4), st.booleans(), st.none()), max_size=3)
EVENTS = TypeAdapter(ResponseStreamEvent)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """System, then turns of a user message, an assistant reply (thinking, text, calls) and
    the result of each call."""
    messages = [Message(role="system", content=draw(TEXT))] if draw(st.booleans()) else []
    for turn in range(draw(st.integers(1, 3))):
        messages.append(Message(role="user", content=draw(TEXT), images=draw(st.lists(st.binary(min_size=1, max_size=6), max_size=2))))
        calls = [
            ToolCall(id=f"call_{turn}_{i}", function=ToolCallFunction(name=draw(NAMES), arguments=draw(ARGUMENTS), index=i))
            for i in range(draw(st.integers(0, 2)))
        ]
        messages.append(Message(role="assistant", content=draw(TEXT), thinking=draw(TEXT), tool_calls=calls))
        messages += [Message(role="tool", content=draw(TEXT), tool_call_id=c.id, tool_name=c.function.name) for c in calls]
    return messages


def _content(text: str, images: list[bytes], draw: st.DrawFn) -> str | list[dict[str, Any]]:
    if not images and draw(st.booleans()):
        return text
    cut = draw(st.integers(0, len(text)))
    parts: list[dict[str, Any]] = [{"type": "input_text", "text": text[:cut]}, {"type": "input_text", "text": text[cut:]}]
    return parts + [{"type": "input_image", "image_url": "data:image/png;base64," + base64.b64encode(i).decode()} for i in images]


def items_of(messages: list[Message], draw: st.DrawFn) -> list[dict[str, Any]]:
    """The conversation as a client replays it: input items, in the shapes clients send."""
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role in ("system", "user"):
            role = draw(st.sampled_from(["system", "developer"])) if m.role == "system" else "user"
            shorthand = {} if draw(st.booleans()) else {"type": "message"}
            items.append({**shorthand, "role": role, "content": _content(m.content, m.images, draw)})
        elif m.role == "assistant":
            if m.thinking:
                reasoning = (
                    {"encrypted_content": m.thinking}
                    if draw(st.booleans())
                    else {"summary": [{"type": "summary_text", "text": m.thinking}]}
                )
                items.append({"type": "reasoning", "id": "rs_1", **reasoning})
            if m.content or not m.tool_calls:
                items.append(
                    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": m.content, "annotations": []}]}
                )
            for c in m.tool_calls:
                arguments = json.dumps(c.function.arguments)
                items.append(
                    {"type": "function_call", "call_id": c.id, "name": c.function.name, "arguments": arguments, "status": "completed"}
                )
        else:
            items.append({"type": "function_call_output", "call_id": m.tool_call_id, "output": m.content})
    return items


@settings(max_examples=200, deadline=None)
@given(data=st.data(), messages=conversations())
def test_input_items_round_trip_into_messages(data: st.DataObject, messages: list[Message]) -> None:
    assert convert.messages_of(None, items_of(messages, data.draw)) == messages


@given(instructions=TEXT, text=TEXT)
def test_instructions_and_a_string_input(instructions: str, text: str) -> None:
    system = [Message(role="system", content=instructions)] if instructions else []
    assert convert.messages_of(instructions, text) == [*system, Message(role="user", content=text)]


def test_an_assistant_message_between_a_call_and_its_output_joins_the_call() -> None:
    """As in Ollama: the tool result must follow the call it answers."""
    items: list[dict[str, Any]] = [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"role": "assistant", "content": "calling f"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "ok"}]},
    ]
    call = ToolCall(id="c1", function=ToolCallFunction(name="f", arguments={}, index=0))
    assert convert.messages_of(None, items)[1:] == [
        Message(role="assistant", content="calling f", tool_calls=[call]),
        Message(role="tool", content="ok", tool_call_id="c1", tool_name="f"),
    ]


CALLS = st.lists(st.builds(lambda n, a: ToolCall(function=ToolCallFunction(name=n, arguments=a)), NAMES, ARGUMENTS), min_size=1, max_size=2)
DELTAS = st.lists(
    st.one_of(
        st.builds(lambda t: Delta(thinking=t), WORDS),
        st.builds(lambda t: Delta(text=t), WORDS),
        st.builds(lambda c: Delta(tool_calls=c), CALLS),
    ),
    max_size=8,
)


def _run(deltas: list[Delta], done: Done) -> tuple[list[dict[str, Any]], r.Response]:
    out = convert.Output(r.ResponsesBody(model="m", input="x"), SamplingOptions())
    named = [*out.start(), *(e for d in deltas for e in out.add(d)), *out.finish(done)]
    events = []
    for name, event in named:
        events.append(msgspec.to_builtins(event))
        assert events[-1]["type"] == name
    return events, out.response


@settings(max_examples=150, deadline=None)
@given(deltas=DELTAS, reason=st.sampled_from(["stop", "length"]))
def test_any_events_make_a_stream_the_openai_client_accepts(deltas: list[Delta], reason: Any) -> None:
    events, response = _run(deltas, Done(reason=reason, prompt_tokens=3, completion_tokens=len(deltas)))
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    state = ResponseStreamState(input_tools=[], text_format=omit)  # checks item identities and order, as the client's stream() does
    for event in events:
        state.handle_event(EVENTS.validate_python(event))
    final = Response.model_validate(events[-1]["response"])
    assert events[-1]["type"] == ("response.completed" if reason == "stop" else "response.incomplete") == f"response.{final.status}"
    assert final == Response.model_validate(msgspec.to_builtins(response))
    text = "".join(d.text for d in deltas)
    assert final.output_text == text == "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    thinking = [s.text for item in final.output if item.type == "reasoning" for s in item.summary]
    assert "".join(thinking) == "".join(d.thinking for d in deltas)
    calls = [(item.name, json.loads(item.arguments)) for item in final.output if item.type == "function_call"]
    assert calls == [(c.function.name, c.function.arguments) for d in deltas for c in d.tool_calls]
    added = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    assert added == list(range(len(final.output))) == [e["output_index"] for e in events if e["type"] == "response.output_item.done"]
    assert final.usage is not None and final.usage.total_tokens == 3 + len(deltas)


@settings(max_examples=100, deadline=None)
@given(thinking=st.lists(WORDS, max_size=3), text=st.lists(WORDS, max_size=3), calls=st.lists(CALLS, max_size=2))
def test_output_items_replayed_as_input_give_the_assistant_turn(thinking: list[str], text: list[str], calls: list[list[ToolCall]]) -> None:
    deltas = [*(Delta(thinking=t) for t in thinking), *(Delta(text=t) for t in text), *(Delta(tool_calls=c) for c in calls)]
    _, response = _run(deltas, Done())
    output: list[dict[str, Any]] = msgspec.to_builtins(response.output)
    (message,) = convert.messages_of(None, output)
    ids = [item["call_id"] for item in output if item["type"] == "function_call"]
    flat = [c for group in calls for c in group]
    assert message == Message(
        role="assistant",
        content="".join(text),
        thinking="".join(thinking),
        tool_calls=[
            ToolCall(id=i, function=ToolCallFunction(name=c.function.name, arguments=c.function.arguments, index=n))
            for n, (i, c) in enumerate(zip(ids, flat, strict=True))
        ],
    )


def test_a_failure_mid_stream_ends_with_response_failed() -> None:
    out = convert.Output(r.ResponsesBody(model="m", input="x"), SamplingOptions())
    events = [*out.start(), *out.add(Delta(text="partial"))]
    name, event = out.failed("the engine died")
    assert name == "response.failed" and event.sequence_number == len(events)
    failed = EVENTS.validate_python(msgspec.to_builtins(event))
    assert failed.type == "response.failed" and failed.response.error is not None
    assert failed.response.error.message == "the engine died" and failed.response.status == "failed"
    assert failed.response.output_text == "partial"


@pytest.mark.parametrize(
    "tool", [{"type": "web_search"}, {"type": "mcp", "server_label": "x"}, {"type": "custom", "name": "x"}, {"name": "f"}]
)
def test_tools_other_than_functions_are_refused_by_type(tool: dict[str, Any]) -> None:
    with pytest.raises(BadRequest, match=f"tool type {tool.get('type')!r} is not supported"):
        convert.tools_of([tool])
