"""Anthropic's Messages API (/v1/messages), for Claude Code and the ``anthropic`` clients;
:mod:`vllama.server.anthropic_convert` translates its bodies."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.response import Response, Stream

from vllama.server import anthropic_convert as convert
from vllama.server import anthropic_wire as a
from vllama.server import serving
from vllama.server.ndjson import sse_events


@post("/v1/messages", status_code=200, tags=["anthropic"], summary="Anthropic messages")
async def messages(request: Request[Any, Any, Any], data: a.MessagesBody) -> Response[Any] | Stream:
    convert.check(data)
    v = serving.vllama_of(request)
    model = await v.find(data.model)
    keep_alive = serving.parse_keep_alive(data.keep_alive)
    options = serving.merge_options(v, model, convert.options_of(data))
    req = convert.chat_request(data, options.sampling, model_thinks="thinking" in model.capabilities)
    run = await serving.start(v, model, req, keep_alive=keep_alive, options=options, receive=request.receive)
    mid = convert.message_id()
    if data.stream:
        return sse_events(convert.stream(run.events, mid, data.model, convert.estimate_tokens(data)), convert.stream_error)
    return Response(await serving.unless_disconnected(convert.message(run.events, mid, data.model), request.receive))


@post("/v1/messages/count_tokens", status_code=200, tags=["anthropic"], summary="Anthropic token count (estimated)")
async def count_tokens(request: Request[Any, Any, Any], data: a.CountTokensBody) -> a.CountTokensResponse:
    await serving.vllama_of(request).find(data.model)
    convert.messages_of(data)  # the same checks as a request
    return a.CountTokensResponse(input_tokens=convert.estimate_tokens(data))


ROUTES = [messages, count_tokens]
