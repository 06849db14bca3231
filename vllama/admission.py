"""The one place that decides whether a request can run, before anything loads.

A request is checked against the model (what its weights and template can do: Ollama's
capability errors) and against the backend that would serve it (what its engine can do),
so that a request the engine would refuse costs no load, no eviction and no queue slot.
The same rule gives the capabilities that /api/show and /api/tags list.
"""

from __future__ import annotations

from vllama.errors import BadRequest, Unsupported
from vllama.selection import Candidate
from vllama.thinking import can_disable
from vllama.types import ChatRequest, GenerateRequest, ModelRef, Scoring

#: Model capabilities and the backend capability each needs ("completion": either).
_NEEDS = {
    "completion": ("completion", "chat"),
    "embedding": ("embedding",),
    "tools": ("tools",),
    "thinking": ("thinking",),
    "insert": ("insert",),
    "vision": ("vision",),
}


def capabilities(model: ModelRef, serving: Candidate | None) -> list[str]:
    """What ``model`` can do when the backend of ``serving`` serves it (all the model's own
    without one)."""
    if serving is None:
        return list(model.capabilities)
    return [c for c in model.capabilities if any(b in serving.capabilities for b in _NEEDS.get(c, (c,)))]


def check(model: ModelRef, serving: Candidate, request: GenerateRequest | ChatRequest) -> None:
    """Raise :class:`~vllama.errors.Unsupported` (a 400) for what the model or the engine
    cannot do, rather than ignore it silently."""
    chat = isinstance(request, ChatRequest)
    if "completion" not in model.capabilities:
        raise Unsupported(f'"{model.name}" does not support {"chat" if chat else "generate"}')
    if isinstance(request, GenerateRequest) and request.context:
        check_context(model, request.context)
    if isinstance(request, ChatRequest):
        images, tools, suffix = any(m.images for m in request.messages), bool(request.tools), False
    else:
        images, tools, suffix = bool(request.images), False, bool(request.suffix)
    needs = [
        # (model capability or None, backend capability, what it is called in the error)
        ("tools", "tools", "tools", tools),
        ("thinking", "thinking", "thinking", bool(request.think)),
        ("insert", "insert", "insert", suffix),
        (None, "format", "structured output (format)", request.format is not None),
        (None, "logprobs", "logprobs", request.logprobs),
        (None, "vision", "images", images),
    ]
    if request.think is False and "thinking" in model.capabilities and not can_disable(model.template):
        raise Unsupported(f'"{model.name}" cannot turn thinking off: its template always thinks')
    for model_cap, backend_cap, what, needed in needs:
        if not needed:
            continue
        if model_cap is not None and model_cap not in model.capabilities:
            raise Unsupported(f'"{model.name}" does not support {what}')
        if backend_cap not in serving.capabilities:
            raise Unsupported(f'"{model.name}" does not support {what} with the {serving.backend.name} backend')


def check_embed(model: ModelRef, serving: Candidate) -> None:
    """Embeddings need a backend that embeds this model; as in Ollama, a generative model may
    embed where the backend allows it; a reranker does not embed."""
    if "rerank" in model.capabilities and "embedding" not in model.capabilities:
        raise Unsupported(f'"{model.name}" is a reranker and does not support embeddings: use /api/rerank')
    if "embedding" not in serving.capabilities:
        raise Unsupported(f'"{model.name}" does not support embeddings with the {serving.backend.name} backend')


def check_rerank(model: ModelRef, serving: Candidate) -> Scoring:
    """How a rerank with ``model`` is scored: by the engine where the model is a reranker its
    backend runs, else by embedding similarity where it is an embedding model the backend
    embeds. A generative model is refused: its embeddings do not rank documents."""
    if "rerank" in model.capabilities and "rerank" in serving.capabilities:
        return "cross-encoder"
    if "embedding" in model.capabilities and "embedding" in serving.capabilities:
        return "embedding-similarity"
    if "rerank" in model.capabilities or "embedding" in model.capabilities:
        raise Unsupported(f'"{model.name}" does not support rerank with the {serving.backend.name} backend')
    raise Unsupported(f'"{model.name}" does not support rerank: use a reranker or an embedding model')


def check_context(model: ModelRef, context: list[int]) -> None:
    """Token ids in ``context`` must lie in the model's vocabulary where its metadata gives
    the size (``<arch>.vocab_size``); engines check against their own tokenizer too."""
    vocab = model.info.get(f"{model.info.get('general.architecture', '')}.vocab_size")
    for token in context:
        if token < 0 or (isinstance(vocab, int) and token >= vocab):
            raise BadRequest(f"invalid context: token id {token} is out of range")
