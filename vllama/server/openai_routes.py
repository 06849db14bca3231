"""OpenAI-compatible routes under /v1, with Ollama's mapping of fields and defaults."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import secrets
import struct
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from litestar import Request, get, post
from litestar.response import Response, Stream

from vllama.errors import BadRequest, ModelNotFound
from vllama.names import parse_name
from vllama.server import openai_limits, serving
from vllama.server import openai_wire as o
from vllama.server.ndjson import sse
from vllama.server.ollama_generate import vllama_of
from vllama.types import ChatRequest, Delta, Done, EventStream, GenerateRequest, Message, Tool, ToolCall, ToolCallFunction

_EFFORT = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high", "max": "max", "xhigh": "max", "ultra": "max"}


def _options(body: o.ChatCompletionBody | o.CompletionBody, max_tokens: int | None) -> dict[str, Any]:
    """OpenAI fields as Ollama options; temperature and top_p default to 1.0 as in Ollama."""
    out: dict[str, Any] = {
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "top_p": 1.0 if body.top_p is None else body.top_p,
    }
    for key in ("seed", "frequency_penalty", "presence_penalty"):
        if (value := getattr(body, key)) is not None:
            out[key] = value
    if max_tokens is not None:
        out["num_predict"] = max_tokens
    if body.stop is not None:
        out["stop"] = [body.stop] if isinstance(body.stop, str) else body.stop
    return out


def _messages(messages: list[o.ChatMessage]) -> list[Message]:
    out = []
    call_names: dict[str, str] = {}  # tool_call_id -> function name, for tool results
    for m in messages:
        text, images = [], []
        if isinstance(m.content, str):
            text.append(m.content)
        for part in m.content if isinstance(m.content, list) else []:
            if part.get("type") == "text":
                text.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                url = part.get("image_url")
                url = url.get("url", "") if isinstance(url, dict) else str(url or "")
                if not url.startswith("data:"):
                    raise BadRequest("image URLs must be base64 data URLs")
                images.extend(serving.decode_images([url]))
            else:
                raise BadRequest(f"unsupported content part type {part.get('type')!r}")
        calls = []
        for i, call in enumerate(m.tool_calls or []):
            fn = call.get("function") or {}
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except ValueError:
                raise BadRequest("tool call arguments must be a JSON object string") from None
            if not isinstance(args, dict):
                raise BadRequest("tool call arguments must be a JSON object string")
            calls.append(ToolCall(id=call.get("id", ""), function=ToolCallFunction(name=fn.get("name", ""), arguments=args, index=i)))
            call_names[call.get("id", "")] = fn.get("name", "")
        role = "system" if m.role == "developer" else m.role
        if role not in ("system", "user", "assistant", "tool"):
            raise BadRequest(f"invalid role {m.role!r}")
        out.append(Message(role=role, content="".join(text), images=images, tool_calls=calls,
                           thinking=m.reasoning or m.reasoning_content or "", tool_call_id=m.tool_call_id or "",
                           tool_name=m.name or call_names.get(m.tool_call_id or "", "") if role == "tool" else ""))  # fmt: skip
    return out


def _tool_choice(choice: str | dict[str, Any] | None, tools: list[Tool]) -> tuple[list[Tool], Literal["auto", "required"]]:
    """OpenAI's ``tool_choice``: "none" offers no tools, "required" or a named function makes
    the reply a call (of that function only)."""
    if choice is None or choice == "auto":
        return tools, "auto"
    if choice == "none":
        return [], "auto"
    if choice == "required":
        if not tools:
            raise BadRequest('tool_choice "required" needs tools')
        return tools, "required"
    name = ((choice.get("function") or {}).get("name") if isinstance(choice, dict) else None) or ""
    if not isinstance(name, str) or not name:
        raise BadRequest('invalid tool_choice: use "none", "auto", "required" or {"type": "function", "function": {"name": ...}}')
    named = [t for t in tools if t.function.name == name]
    if not named:
        raise BadRequest(f"tool_choice names {name!r}, which is not in tools")
    return named, "required"


def _format(response_format: dict[str, Any] | None) -> Any:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema must be an object")
        return schema
    if kind == "text":
        return None
    raise BadRequest(f"invalid response_format type {kind!r}")


def _think(body: o.ChatCompletionBody) -> Any:
    effort = body.reasoning_effort or (body.reasoning or {}).get("effort")
    if effort is None:
        return None
    if effort not in _EFFORT:
        raise BadRequest(f"invalid reasoning_effort {effort!r}: use none, minimal, low, medium, high or max")
    return _EFFORT[effort]


def _tool_calls(calls: list[ToolCall], start: int = 0) -> list[o.ToolCall] | None:
    if not calls:
        return None
    return [
        o.ToolCall(
            id=c.id or f"call_{secrets.token_hex(4)}",
            index=start + i,
            function=o.FunctionCall(name=c.function.name, arguments=json.dumps(c.function.arguments)),
        )
        for i, c in enumerate(calls)
    ]


def _logprobs(delta: Delta) -> o.ChoiceLogprobs | None:
    if not delta.logprobs:
        return None
    return o.ChoiceLogprobs(content=[
        o.LogprobContent(token=lp.token, logprob=lp.logprob, bytes=lp.bytes or None,
                         top_logprobs=[o.TopLogprob(t.token, t.logprob, t.bytes or None) for t in lp.top_logprobs])
        for lp in delta.logprobs
    ])  # fmt: skip


def _usage(done: Done) -> o.Usage:
    return o.Usage(done.prompt_tokens, done.completion_tokens, done.prompt_tokens + done.completion_tokens)


@post("/v1/chat/completions", status_code=200, tags=["openai"], summary="OpenAI chat completions")
async def chat_completions(request: Request[Any, Any, Any], data: o.ChatCompletionBody) -> Response[Any] | Stream:
    v = vllama_of(request)
    if not data.messages:
        raise BadRequest("[] is too short - 'messages'")
    openai_limits.check(data)
    model = await v.find(data.model)
    options = serving.merge_options(v, model, _options(data, data.max_completion_tokens or data.max_tokens))
    sampling = options.sampling
    sampling.ignore_eos = data.ignore_eos
    tools, tool_choice = _tool_choice(data.tool_choice, serving.parse_tools(data.tools))
    think = _think(data)
    top = data.top_logprobs or 0
    serving.check_top_logprobs(top)
    req = ChatRequest(
        messages=serving.with_model_prompt(model, _messages(data.messages)),
        tools=tools, tool_choice=tool_choice, parallel_tool_calls=data.parallel_tool_calls is not False,
        options=sampling, format=_format(data.response_format), think=think,
        logprobs=bool(data.logprobs), top_logprobs=top,
    )  # fmt: skip
    run = await serving.start(v, model, req, keep_alive=None, options=options, receive=request.receive)
    rid, created = f"chatcmpl-{secrets.token_hex(6)}", int(time.time())
    if data.stream:
        usage = bool(data.stream_options and data.stream_options.include_usage)
        return sse(_chat_chunks(run.events, rid, created, data.model, usage), _error)
    text, thinking, calls, logprobs = [], [], [], []
    done = Done()
    async for event in run.events:
        if isinstance(event, Delta):
            text.append(event.text)
            thinking.append(event.thinking)
            calls.extend(event.tool_calls)
            logprobs.extend(event.logprobs)
        else:
            done = event
    message = o.ResponseMessage(role="assistant", content="".join(text), reasoning="".join(thinking) or None, tool_calls=_tool_calls(calls))
    finish = "tool_calls" if calls else done.reason
    return Response(o.ChatCompletion(
        id=rid, created=created, model=data.model, usage=_usage(done),
        choices=[o.ChatChoice(message=message, finish_reason=finish, logprobs=_logprobs(Delta(logprobs=logprobs)))],
    ))  # fmt: skip


async def _chat_chunks(
    events: EventStream, rid: str, created: int, model: str, include_usage: bool
) -> AsyncIterator[o.ChatCompletionChunk]:
    def chunk(delta: o.ResponseMessage, finish: str | None = None, logprobs: o.ChoiceLogprobs | None = None) -> o.ChatCompletionChunk:
        return o.ChatCompletionChunk(id=rid, created=created, model=model,
                                     choices=[o.ChunkChoice(delta=delta, finish_reason=finish, logprobs=logprobs)])  # fmt: skip

    yield chunk(o.ResponseMessage(role="assistant", content=""))
    n_calls = 0
    async for event in events:
        if isinstance(event, Delta):
            calls = _tool_calls(event.tool_calls, n_calls)
            n_calls += len(event.tool_calls)
            yield chunk(
                o.ResponseMessage(content=event.text or None, reasoning=event.thinking or None, tool_calls=calls), logprobs=_logprobs(event)
            )
        else:
            yield chunk(o.ResponseMessage(), "tool_calls" if n_calls else event.reason)
            if include_usage:
                yield o.ChatCompletionChunk(id=rid, created=created, model=model, choices=[], usage=_usage(event))


def _error(message: str) -> o.ErrorBody:
    return o.error_body(message)


@post("/v1/completions", status_code=200, tags=["openai"], summary="OpenAI completions")
async def completions(request: Request[Any, Any, Any], data: o.CompletionBody) -> Response[Any] | Stream:
    v = vllama_of(request)
    prompt = data.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise BadRequest("prompt must be a string (one prompt per request)")
        prompt = prompt[0]
    openai_limits.check(data)
    model = await v.find(data.model)
    options = serving.merge_options(v, model, _options(data, data.max_tokens))
    sampling = options.sampling
    sampling.ignore_eos = data.ignore_eos
    req = GenerateRequest(prompt=prompt, system=model.system, suffix=data.suffix or "", options=sampling)
    run = await serving.start(v, model, req, keep_alive=None, options=options, receive=request.receive)
    rid, created = f"cmpl-{secrets.token_hex(6)}", int(time.time())
    if data.stream:
        usage = bool(data.stream_options and data.stream_options.include_usage)
        return sse(_completion_chunks(run.events, rid, created, data.model, usage), _error)
    text, done = [], Done()
    async for event in run.events:
        if isinstance(event, Delta):
            text.append(event.text)
        else:
            done = event
    return Response(o.Completion(id=rid, created=created, model=data.model, usage=_usage(done),
                                 choices=[o.CompletionChoice(text="".join(text), finish_reason=done.reason)]))  # fmt: skip


async def _completion_chunks(events: EventStream, rid: str, created: int, model: str, include_usage: bool) -> AsyncIterator[o.Completion]:
    async for event in events:
        if isinstance(event, Delta):
            yield o.Completion(id=rid, created=created, model=model, choices=[o.CompletionChoice(text=event.text)])
        else:
            yield o.Completion(id=rid, created=created, model=model, choices=[o.CompletionChoice(text="", finish_reason=event.reason)])
            if include_usage:
                yield o.Completion(id=rid, created=created, model=model, choices=[], usage=_usage(event))


@post("/v1/embeddings", status_code=200, tags=["openai"], summary="OpenAI embeddings")
async def embeddings(request: Request[Any, Any, Any], data: o.EmbeddingsBody) -> o.EmbeddingList:
    v = vllama_of(request)
    inputs = [data.input] if isinstance(data.input, str) else data.input
    if not inputs or not all(isinstance(i, str) for i in inputs) or any(i == "" for i in inputs):
        raise BadRequest("invalid input")
    if data.encoding_format not in ("float", "base64"):
        raise BadRequest(f"invalid encoding_format {data.encoding_format!r}: use float or base64")
    if data.dimensions is not None and data.dimensions < 1:
        raise BadRequest("dimensions must be a positive integer")
    model = await v.find(data.model)
    vectors, tokens, _ = await serving.embed_vectors(
        v, model, inputs, truncate=True, keep_alive=None, options=serving.merge_options(v, model, None)
    )
    out = []
    for i, vec in enumerate(vectors):
        unit = serving.normalize(vec, data.dimensions)
        value: list[float] | str = unit
        if data.encoding_format == "base64":
            value = base64.b64encode(struct.pack(f"<{len(unit)}f", *unit)).decode()
        out.append(o.Embedding(embedding=value, index=i))
    return o.EmbeddingList(data=out, model=data.model, usage=o.EmbeddingUsage(tokens, tokens))


def _model(ref: Any) -> o.Model:
    created = int(dt.datetime.fromisoformat(ref.modified_at.replace("Z", "+00:00")).timestamp()) if ref.modified_at else 0
    name = parse_name(ref.name)
    return o.Model(id=ref.name, created=created, owned_by=name.namespace)


@get("/v1/models", tags=["openai"], summary="OpenAI model list")
async def models(request: Request[Any, Any, Any]) -> o.ModelList:
    refs = await asyncio.to_thread(vllama_of(request).store.list)
    return o.ModelList(data=[_model(r) for r in refs])


@get("/v1/models/{model:path}", tags=["openai"], summary="OpenAI model retrieve")
async def model(request: Request[Any, Any, Any], model: str) -> o.Model:
    name = model.lstrip("/")
    try:
        ref = await vllama_of(request).find(name)
    except BadRequest:
        raise ModelNotFound(name) from None
    return _model(ref)


ROUTES = [chat_completions, completions, embeddings, models, model]
