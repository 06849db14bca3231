"""Rerank bodies to the core's inputs, and scores back to the response."""

from __future__ import annotations

import secrets

from vllama.errors import BadRequest
from vllama.server import rerank_wire as r
from vllama.types import RerankScores


def documents_of(body: r.RerankBody) -> list[str]:
    """The documents' texts; a 400 for a request with nothing to rank."""
    if not body.query:
        raise BadRequest("query is required")
    if not body.documents:
        raise BadRequest("documents must hold at least one document")
    if body.top_n is not None and body.top_n < 0:
        raise BadRequest("top_n must not be negative")
    texts = [d if isinstance(d, str) else d.text for d in body.documents]
    for i, text in enumerate(texts):
        if not text:
            raise BadRequest(f"documents[{i}] is empty")
    return texts


def response(body: r.RerankBody, documents: list[str], scored: RerankScores) -> r.RerankResponse:
    """The documents by relevance, the best first, cut to ``top_n``."""
    if len(scored.scores) != len(documents):
        raise ValueError(f"{len(scored.scores)} scores for {len(documents)} documents")
    order = sorted(range(len(documents)), key=lambda i: scored.scores[i], reverse=True)
    if body.top_n:
        order = order[: body.top_n]
    results = [
        r.RerankResult(index=i, relevance_score=scored.scores[i], document=r.Document(text=documents[i]) if body.return_documents else None)
        for i in order
    ]
    usage = r.RerankUsage(prompt_tokens=scored.prompt_tokens, total_tokens=scored.prompt_tokens)
    return r.RerankResponse(id=f"rerank-{secrets.token_hex(6)}", model=body.model, usage=usage, results=results, scoring=scored.scoring)
