"""Ollama's generation routes: /api/generate, /api/chat, /api/embed, /api/embeddings."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.response import Response, Stream

from vllama import options as opts
from vllama.core import Vllama
from vllama.errors import BadRequest
from vllama.server import ollama_convert as convert
from vllama.server import ollama_wire as w
from vllama.server import serving
from vllama.server.ndjson import ndjson
from vllama.server.timefmt import rfc3339

# -- /api/generate ------------------------------------------------------------------------


@post("/api/generate", status_code=200, tags=["generation"], summary="Generate a completion")
async def generate(request: Request[Any, Any, Any], data: w.GenerateBody) -> Response[Any] | Stream:
    started = serving.now_ns()
    v = serving.vllama_of(request)
    model = await v.find(data.model)
    keep_alive = serving.parse_keep_alive(data.keep_alive)
    options = serving.merge_options(v, model, data.options)
    req = convert.generate_request(data, options.sampling, model_system=model.system)
    if not req.prompt and not req.images:
        return await _load_or_unload(v, model, data.model, keep_alive, options, started, chat=False)
    run = await serving.start(v, model, req, keep_alive=keep_alive, options=options, receive=request.receive)
    chunks = convert.generate_chunks(data.model, run, started, with_context=not data.raw)
    if data.stream is False:
        return Response(await serving.unless_disconnected(convert.concat_generate(chunks), request.receive))
    return ndjson(chunks)


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
        return Response(
            w.ChatChunk(
                model=name,
                created_at=rfc3339(),
                message=message,
                done=True,
                done_reason=reason,
                load_duration=load_ns,
                total_duration=total,
            )
        )
    return Response(
        w.GenerateChunk(
            model=name, created_at=rfc3339(), response="", done=True, done_reason=reason, load_duration=load_ns, total_duration=total
        )
    )


# -- /api/chat ---------------------------------------------------------------------------


@post("/api/chat", status_code=200, tags=["generation"], summary="Chat with a model")
async def chat(request: Request[Any, Any, Any], data: w.ChatBody) -> Response[Any] | Stream:
    started = serving.now_ns()
    v = serving.vllama_of(request)
    model = await v.find(data.model)
    keep_alive = serving.parse_keep_alive(data.keep_alive)
    options = serving.merge_options(v, model, data.options)
    req = convert.chat_request(data, options.sampling)
    if not req.messages:
        return await _load_or_unload(v, model, data.model, keep_alive, options, started, chat=True)
    run = await serving.start(v, model, req, keep_alive=keep_alive, options=options, receive=request.receive)
    chunks = convert.chat_chunks(data.model, run.events, started, run.load_ns)
    if data.stream is False:
        return Response(await serving.unless_disconnected(convert.concat_chat(chunks), request.receive))
    return ndjson(chunks)


# -- embeddings --------------------------------------------------------------------------


@post("/api/embed", status_code=200, tags=["embeddings"], summary="Embed text (normalised vectors)")
async def embed(request: Request[Any, Any, Any], data: w.EmbedBody) -> w.EmbedResponse:
    started = serving.now_ns()
    v = serving.vllama_of(request)
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
    v = serving.vllama_of(request)
    model = await v.find(data.model)
    keep_alive = serving.parse_keep_alive(data.keep_alive)
    options = serving.merge_options(v, model, data.options)
    if not data.prompt:
        await v.scheduler.load(model, keep_alive=keep_alive, options=options)
        return w.EmbeddingsResponse(embedding=[])
    vectors, _, _ = await serving.embed_vectors(v, model, [data.prompt], truncate=True, keep_alive=keep_alive, options=options)
    return w.EmbeddingsResponse(embedding=vectors[0])


ROUTES = [generate, chat, embed, embeddings]
