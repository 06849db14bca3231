"""Ollama's wire types to the core's and back: requests, messages, and the chunks of a reply."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypedDict

from vllama.errors import BadRequest
from vllama.server import ollama_wire as w
from vllama.server import serving
from vllama.server.timefmt import rfc3339
from vllama.types import ChatRequest, Delta, Done, EventStream, GenerateRequest, Message, SamplingOptions, ToolCall, ToolCallFunction


def wire_logprobs(delta: Delta) -> list[w.WireLogprob] | None:
    if not delta.logprobs:
        return None
    return [
        w.WireLogprob(
            token=lp.token,
            logprob=lp.logprob,
            bytes=lp.bytes or None,
            top_logprobs=[w.WireTopLogprob(token=t.token, logprob=t.logprob, bytes=t.bytes or None) for t in lp.top_logprobs] or None,
        )
        for lp in delta.logprobs
    ]


def wire_tool_calls(calls: list[ToolCall]) -> list[w.WireToolCall] | None:
    if not calls:
        return None
    return [
        w.WireToolCall(
            id=c.id, function=w.WireToolCallFunction(name=c.function.name, arguments=c.function.arguments, index=c.function.index or 0)
        )
        for c in calls
    ]


class MetricsFields(TypedDict):
    """The durations and counts of a final chunk (Ollama's ``Metrics``)."""

    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int


def metrics(done: Done, started: int, load_ns: int) -> MetricsFields:
    return {
        "total_duration": serving.now_ns() - started,
        "load_duration": load_ns,
        "prompt_eval_count": done.prompt_tokens,
        "prompt_eval_duration": done.prompt_eval_ns,
        "eval_count": done.completion_tokens,
        "eval_duration": done.eval_ns,
    }


async def generate_chunks(name: str, run: serving.Run, started: int, *, with_context: bool) -> AsyncIterator[w.GenerateChunk]:
    async for event in run.events:
        if isinstance(event, Delta):
            yield w.GenerateChunk(
                model=name,
                created_at=rfc3339(),
                response=event.text,
                thinking=event.thinking,
                done=False,
                tool_calls=wire_tool_calls(event.tool_calls),
                logprobs=wire_logprobs(event),
            )
        else:
            yield w.GenerateChunk(
                model=name,
                created_at=rfc3339(),
                response="",
                done=True,
                done_reason=event.reason,
                context=event.context if with_context and event.context else None,
                **metrics(event, started, run.load_ns),
            )


async def concat_generate(chunks: AsyncIterator[w.GenerateChunk]) -> w.GenerateChunk:
    text, thinking, calls, logprobs = [], [], [], []
    async for chunk in chunks:
        if not chunk.done:
            text.append(chunk.response)
            thinking.append(chunk.thinking)
            calls.extend(chunk.tool_calls or [])
            logprobs.extend(chunk.logprobs or [])
            continue
        chunk.response = "".join(text)
        chunk.thinking = "".join(thinking)
        chunk.tool_calls = calls or None
        chunk.logprobs = logprobs or None
        return chunk
    raise AssertionError("stream ended without a final chunk")


def to_messages(messages: list[w.WireMessage]) -> list[Message]:
    out = []
    for m in messages:
        role = m.role.lower()
        if role not in ("system", "user", "assistant", "tool"):
            raise BadRequest(f"invalid role {m.role!r}: use system, user, assistant or tool")
        out.append(
            Message(
                role=role,
                content=m.content,
                thinking=m.thinking,
                images=serving.decode_images(m.images),
                tool_calls=[
                    ToolCall(
                        id=c.id, function=ToolCallFunction(name=c.function.name, arguments=c.function.arguments, index=c.function.index)
                    )
                    for c in m.tool_calls or []
                ],
                tool_name=m.tool_name,
                tool_call_id=m.tool_call_id,
            )
        )
    return out


async def chat_chunks(name: str, events: EventStream, started: int, load_ns: int) -> AsyncIterator[w.ChatChunk]:
    async for event in events:
        if isinstance(event, Delta):
            yield w.ChatChunk(
                model=name,
                created_at=rfc3339(),
                message=w.ChatChunkMessage(
                    role="assistant", content=event.text, thinking=event.thinking, tool_calls=wire_tool_calls(event.tool_calls)
                ),
                done=False,
                logprobs=wire_logprobs(event),
            )
        else:
            yield w.ChatChunk(
                model=name,
                created_at=rfc3339(),
                message=w.ChatChunkMessage(role="assistant", content=""),
                done=True,
                done_reason=event.reason,
                truncated_messages=event.dropped_messages,
                **metrics(event, started, load_ns),
            )


async def concat_chat(chunks: AsyncIterator[w.ChatChunk]) -> w.ChatChunk:
    text, thinking, calls, logprobs = [], [], [], []
    async for chunk in chunks:
        if not chunk.done:
            text.append(chunk.message.content)
            thinking.append(chunk.message.thinking)
            calls.extend(chunk.message.tool_calls or [])
            logprobs.extend(chunk.logprobs or [])
            continue
        chunk.message = w.ChatChunkMessage(role="assistant", content="".join(text), thinking="".join(thinking), tool_calls=calls or None)
        chunk.logprobs = logprobs or None
        return chunk
    raise AssertionError("stream ended without a final chunk")


def generate_request(data: w.GenerateBody, sampling: SamplingOptions, *, model_system: str) -> GenerateRequest:
    """The core's request for /api/generate: the model's SYSTEM unless the request gives one
    (none in raw mode); ``sampling`` holds the merged options."""
    if data.raw and (data.template or data.system or data.context):
        raise BadRequest("raw mode does not support template, system, or context")
    if data.template:
        raise BadRequest("template overrides are not supported; create a model with a TEMPLATE instead")
    serving.check_top_logprobs(data.top_logprobs)
    return GenerateRequest(
        prompt=data.prompt,
        system=data.system if data.system is not None else ("" if data.raw else model_system),
        suffix=data.suffix,
        raw=data.raw,
        images=serving.decode_images(data.images),
        context=data.context or [],
        options=sampling,
        format=serving.check_format(data.format),
        think=serving.parse_think(data.think),
        logprobs=data.logprobs or data.top_logprobs > 0,
        top_logprobs=data.top_logprobs,
    )


def chat_request(data: w.ChatBody, sampling: SamplingOptions) -> ChatRequest:
    """The core's request for /api/chat; ``sampling`` holds the merged options."""
    serving.check_top_logprobs(data.top_logprobs)
    return ChatRequest(
        messages=to_messages(data.messages or []),
        tools=serving.parse_tools(data.tools),
        options=sampling,
        format=serving.check_format(data.format),
        think=serving.parse_think(data.think),
        logprobs=data.logprobs or data.top_logprobs > 0,
        top_logprobs=data.top_logprobs,
        truncate=data.truncate is not False,
    )
