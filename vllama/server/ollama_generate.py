"""Ollama's generation routes: /api/generate, /api/chat, /api/embed, /api/embeddings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypedDict

from litestar import Request, post
from litestar.response import Response, Stream

from vllama import options as opts
from vllama.core import Vllama
from vllama.errors import BadRequest
from vllama.server import ollama_wire as w
from vllama.server import serving
from vllama.server.ndjson import ndjson
from vllama.server.timefmt import rfc3339
from vllama.types import ChatRequest, Delta, Done, EventStream, GenerateRequest, Message, ToolCall, ToolCallFunction


def vllama_of(request: Request[Any, Any, Any]) -> Vllama:
    return request.app.state.vllama


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


# -- /api/generate ------------------------------------------------------------------------


@post("/api/generate", status_code=200, tags=["generation"], summary="Generate a completion")
async def generate(request: Request[Any, Any, Any], data: w.GenerateBody) -> Response[Any] | Stream:
    started = serving.now_ns()
    v = vllama_of(request)
    model = await v.find(data.model)
    if data.raw and (data.template or data.system or data.context):
        raise BadRequest("raw mode does not support template, system, or context")
    if data.template:
        raise BadRequest("template overrides are not supported; create a model with a TEMPLATE instead")
    serving.check_top_logprobs(data.top_logprobs)
    keep_alive = serving.parse_keep_alive(data.keep_alive)
    options = serving.merge_options(v, model, data.options)
    sampling = options.sampling
    images = serving.decode_images(data.images)
    think = serving.parse_think(data.think)
    if not data.prompt and not images:
        return await _load_or_unload(v, model, data.model, keep_alive, options, started, chat=False)
    req = GenerateRequest(
        prompt=data.prompt,
        system=data.system if data.system is not None else ("" if data.raw else model.system),
        suffix=data.suffix,
        raw=data.raw,
        images=images,
        context=data.context or [],
        options=sampling,
        format=serving.check_format(data.format),
        think=think,
        logprobs=data.logprobs or data.top_logprobs > 0,
        top_logprobs=data.top_logprobs,
    )
    run = await serving.start(v, model, req, keep_alive=keep_alive, options=options, receive=request.receive)
    chunks = _generate_chunks(data.model, run, started, with_context=not data.raw)
    if data.stream is False:
        return Response(await _concat_generate(chunks))
    return ndjson(chunks)


async def _generate_chunks(name: str, run: serving.Run, started: int, *, with_context: bool) -> AsyncIterator[w.GenerateChunk]:
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


async def _concat_generate(chunks: AsyncIterator[w.GenerateChunk]) -> w.GenerateChunk:
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


async def _load_or_unload(
    v: Vllama, model: Any, name: str, keep_alive: float | None, options: opts.RequestOptions, started: int, *, chat: bool
) -> Response[Any]:
    """Answer a request with nothing to run; ``name`` is the model as the request named it."""
    if keep_alive == 0:
        await v.scheduler.stop(model.name)
        reason, load_ns = "unload", 0
    else:
        load_ns = await v.scheduler.load(model, keep_alive=keep_alive, options=options)
        reason = "load"
    total = serving.now_ns() - started
    if chat:
        message = w.ChatChunkMessage(role="assistant", content="")
        return Response(w.ChatChunk(model=name, created_at=rfc3339(), message=message, done=True, done_reason=reason,
                                    load_duration=load_ns, total_duration=total))  # fmt: skip
    return Response(w.GenerateChunk(model=name, created_at=rfc3339(), response="", done=True, done_reason=reason,
                                    load_duration=load_ns, total_duration=total))  # fmt: skip


# -- /api/chat ---------------------------------------------------------------------------


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


@post("/api/chat", status_code=200, tags=["generation"], summary="Chat with a model")
async def chat(request: Request[Any, Any, Any], data: w.ChatBody) -> Response[Any] | Stream:
    started = serving.now_ns()
    v = vllama_of(request)
    model = await v.find(data.model)
    serving.check_top_logprobs(data.top_logprobs)
    keep_alive = serving.parse_keep_alive(data.keep_alive)
    options = serving.merge_options(v, model, data.options)
    sampling = options.sampling
    messages = to_messages(data.messages or [])
    tools = serving.parse_tools(data.tools)
    think = serving.parse_think(data.think)
    if not messages:
        return await _load_or_unload(v, model, data.model, keep_alive, options, started, chat=True)
    req = ChatRequest(
        messages=serving.with_model_prompt(model, messages),
        tools=tools,
        options=sampling,
        format=serving.check_format(data.format),
        think=think,
        logprobs=data.logprobs or data.top_logprobs > 0,
        top_logprobs=data.top_logprobs,
    )
    run = await serving.start(v, model, req, keep_alive=keep_alive, options=options, receive=request.receive)
    chunks = chat_chunks(data.model, run.events, started, run.load_ns)
    if data.stream is False:
        return Response(await _concat_chat(chunks))
    return ndjson(chunks)


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
                **metrics(event, started, load_ns),
            )


async def _concat_chat(chunks: AsyncIterator[w.ChatChunk]) -> w.ChatChunk:
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


# -- embeddings --------------------------------------------------------------------------


@post("/api/embed", status_code=200, tags=["embeddings"], summary="Embed text (normalised vectors)")
async def embed(request: Request[Any, Any, Any], data: w.EmbedBody) -> w.EmbedResponse:
    started = serving.now_ns()
    v = vllama_of(request)
    model = await v.find(data.model)
    keep_alive = serving.parse_keep_alive(data.keep_alive)
    options = serving.merge_options(v, model, data.options)
    inputs = [data.input] if isinstance(data.input, str) else list(data.input or [])
    if data.dimensions is not None and data.dimensions < 1:
        raise BadRequest("dimensions must be a positive integer")
    if not inputs or inputs == [""]:
        load_ns = await v.scheduler.load(model, keep_alive=keep_alive, options=options)
        return w.EmbedResponse(model=data.model, embeddings=[], load_duration=load_ns)
    vectors, tokens, load_ns = await serving.embed_vectors(
        v, model, inputs, truncate=data.truncate is not False, keep_alive=keep_alive, options=options
    )
    return w.EmbedResponse(
        model=data.model,
        embeddings=[serving.normalize(vec, data.dimensions) for vec in vectors],
        total_duration=serving.now_ns() - started,
        load_duration=load_ns,
        prompt_eval_count=tokens,
    )


@post("/api/embeddings", status_code=200, tags=["embeddings"], summary="Embed one text (legacy, not normalised)")
async def embeddings(request: Request[Any, Any, Any], data: w.EmbeddingsBody) -> w.EmbeddingsResponse:
    v = vllama_of(request)
    model = await v.find(data.model)
    keep_alive = serving.parse_keep_alive(data.keep_alive)
    options = serving.merge_options(v, model, data.options)
    if not data.prompt:
        await v.scheduler.load(model, keep_alive=keep_alive, options=options)
        return w.EmbeddingsResponse(embedding=[])
    vectors, _, _ = await serving.embed_vectors(v, model, [data.prompt], truncate=True, keep_alive=keep_alive, options=options)
    return w.EmbeddingsResponse(embedding=vectors[0])


ROUTES = [generate, chat, embed, embeddings]
