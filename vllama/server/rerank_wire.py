"""The rerank wire format: Jina's and Cohere's request and response, as vLLM serves them.

Requests take documents as strings or ``{"text": ...}`` objects and ignore fields they do not
know; responses list the documents by relevance, most relevant first.
"""

from __future__ import annotations

from typing import Any

import msgspec

from vllama.types import Scoring


class Document(msgspec.Struct, kw_only=True):
    text: str


class RerankBody(msgspec.Struct, kw_only=True):
    model: str = ""
    query: str = ""
    documents: list[str | Document] = []
    #: How many results to return, the best first; None or 0 (vLLM's "all"): every document.
    top_n: int | None = None
    #: Whether each result carries its document (Cohere's field; vLLM always does).
    return_documents: bool = True
    #: Truncate inputs that exceed the context (false: a 400 instead), as /api/embed does.
    truncate: bool | None = None
    keep_alive: int | float | str | None = None
    options: dict[str, Any] | None = None
    num_ctx: int | None = None


class RerankResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    index: int
    relevance_score: float
    document: Document | None = None


class RerankUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(msgspec.Struct, kw_only=True):
    id: str
    model: str
    usage: RerankUsage
    results: list[RerankResult]
    #: How the scores were made: "cross-encoder" (a reranker model read each query and
    #: document together) or "embedding-similarity" (cosine of their embeddings).
    scoring: Scoring
