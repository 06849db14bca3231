"""OpenAI-compatible routes under /v1; :mod:`vllama.server.openai_convert` translates their bodies."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import secrets
import struct
import time
from typing import Any

from litestar import Request, get, post
from litestar.response import Response, Stream

from vllama.errors import BadRequest, ModelNotFound
from vllama.names import parse_name
from vllama.server import openai_convert as convert
from vllama.server import openai_limits, serving
from vllama.server import openai_wire as o
from vllama.server.ndjson import sse


@post("/v1/chat/completions", status_code=200, tags=["openai"], summary="OpenAI chat completions")
async def chat_completions(request: Request[Any, Any, Any], data: o.ChatCompletionBody) -> Response[Any] | Stream:
    v = serving.vllama_of(request)
    if not data.messages:
        raise BadRequest("[] is too short - 'messages'")
    openai_limits.check(data)
    model = await v.find(data.model)
    keep_alive = serving.parse_keep_alive(data.keep_alive)
    options = serving.merge_options(v, model, convert.options_of(data, data.max_completion_tokens or data.max_tokens))
    run = await serving.start(
        v, model, convert.chat_request(data, options.sampling), keep_alive=keep_alive, options=options, receive=request.receive
    )
    rid, created = f"chatcmpl-{secrets.token_hex(6)}", int(time.time())
    if data.stream:
        usage = bool(data.stream_options and data.stream_options.include_usage)
        return sse(convert.chat_chunks(run.events, rid, created, data.model, usage), o.error_body)
    return Response(await serving.unless_disconnected(convert.chat_completion(run.events, rid, created, data.model), request.receive))


@post("/v1/completions", status_code=200, tags=["openai"], summary="OpenAI completions")
async def completions(request: Request[Any, Any, Any], data: o.CompletionBody) -> Response[Any] | Stream:
    v = serving.vllama_of(request)
    openai_limits.check(data)
    model = await v.find(data.model)
    keep_alive = serving.parse_keep_alive(data.keep_alive)
    options = serving.merge_options(v, model, convert.options_of(data, data.max_tokens))
    req = convert.completion_request(data, options.sampling, system=model.system)
    run = await serving.start(v, model, req, keep_alive=keep_alive, options=options, receive=request.receive)
    rid, created = f"cmpl-{secrets.token_hex(6)}", int(time.time())
    if data.stream:
        usage = bool(data.stream_options and data.stream_options.include_usage)
        return sse(convert.completion_chunks(run.events, rid, created, data.model, usage), o.error_body)
    return Response(await serving.unless_disconnected(convert.completion(run.events, rid, created, data.model), request.receive))


@post("/v1/embeddings", status_code=200, tags=["openai"], summary="OpenAI embeddings")
async def embeddings(request: Request[Any, Any, Any], data: o.EmbeddingsBody) -> o.EmbeddingList:
    v = serving.vllama_of(request)
    inputs = [data.input] if isinstance(data.input, str) else data.input
    if not inputs or not all(isinstance(i, str) for i in inputs) or any(i == "" for i in inputs):
        raise BadRequest("invalid input")
    if data.encoding_format not in ("float", "base64"):
        raise BadRequest(f"invalid encoding_format {data.encoding_format!r}: use float or base64")
    if data.dimensions is not None and data.dimensions < 1:
        raise BadRequest("dimensions must be a positive integer")
    model = await v.find(data.model)
    vectors, tokens, _ = await serving.embed_vectors(
        v,
        model,
        inputs,
        truncate=True,
        keep_alive=serving.parse_keep_alive(data.keep_alive),
        options=serving.merge_options(v, model, serving.with_extras({}, data.options, data.num_ctx)),
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
    refs = await asyncio.to_thread(serving.vllama_of(request).store.list)
    return o.ModelList(data=[_model(r) for r in refs])


@get("/v1/models/{model:path}", tags=["openai"], summary="OpenAI model retrieve")
async def model(request: Request[Any, Any, Any], model: str) -> o.Model:
    name = model.lstrip("/")
    try:
        ref = await serving.vllama_of(request).find(name)
    except BadRequest:
        raise ModelNotFound(name) from None
    return _model(ref)


ROUTES = [chat_completions, completions, embeddings, models, model]
