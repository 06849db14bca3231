"""Rerank routes (/api/rerank, and vLLM's /rerank and /v1/rerank); :mod:`vllama.server.rerank_convert` translates their bodies."""

from __future__ import annotations

from typing import Any

from litestar import Request, post

from vllama.server import rerank_convert as convert
from vllama.server import rerank_wire as r
from vllama.server import serving


async def _rerank(request: Request[Any, Any, Any], data: r.RerankBody) -> r.RerankResponse:
    v = serving.vllama_of(request)
    documents = convert.documents_of(data)
    model = await v.find(data.model)
    scored = await serving.rerank_scores(
        v,
        model,
        data.query,
        documents,
        truncate=data.truncate is not False,
        keep_alive=serving.parse_keep_alive(data.keep_alive),
        options=serving.merge_options(v, model, serving.with_extras({}, data.options, data.num_ctx)),
    )
    return convert.response(data, documents, scored)


@post("/api/rerank", status_code=200, tags=["rerank"], summary="Rank documents by relevance to a query")
async def rerank(request: Request[Any, Any, Any], data: r.RerankBody) -> r.RerankResponse:
    return await _rerank(request, data)


@post("/v1/rerank", status_code=200, tags=["rerank"], summary="Rank documents by relevance to a query (Jina, Cohere, vLLM)")
async def rerank_v1(request: Request[Any, Any, Any], data: r.RerankBody) -> r.RerankResponse:
    return await _rerank(request, data)


@post("/rerank", status_code=200, tags=["rerank"], summary="Rank documents by relevance to a query (vLLM's path)")
async def rerank_root(request: Request[Any, Any, Any], data: r.RerankBody) -> r.RerankResponse:
    return await _rerank(request, data)


ROUTES = [rerank, rerank_v1, rerank_root]
