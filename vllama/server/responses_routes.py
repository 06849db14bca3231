"""OpenAI's Responses API, ``POST /v1/responses``, stateless as in Ollama;
:mod:`vllama.server.responses_convert` translates its bodies."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.response import Response, Stream

from vllama.server import openai_limits, serving
from vllama.server import responses_convert as convert
from vllama.server import responses_wire as r
from vllama.server.ndjson import sse_events


@post("/v1/responses", status_code=200, tags=["openai"], summary="OpenAI responses")
async def responses(request: Request[Any, Any, Any], data: r.ResponsesBody) -> Response[Any] | Stream:
    v = serving.vllama_of(request)
    openai_limits.check(data)
    model = await v.find(data.model)
    keep_alive = serving.parse_keep_alive(data.keep_alive)
    options = serving.merge_options(v, model, convert.options_of(data))
    run = await serving.start(
        v, model, convert.chat_request(data, options.sampling), keep_alive=keep_alive, options=options, receive=request.receive
    )
    out = convert.Output(data, options.sampling)
    if data.stream:
        return sse_events(convert.stream_events(run.events, out), out.failed)
    return Response(await serving.unless_disconnected(convert.response(run.events, out), request.receive))


ROUTES = [responses]
