"""Ollama's logprobs from the log-probabilities mlx-lm returns with each token."""

from __future__ import annotations

from typing import Any

from vllama.types import TokenLogprob, TopLogprob


def token_logprob(tokenizer: Any, row: Any, token: int, top_n: int) -> TokenLogprob:
    """The sampled ``token``'s logprob and the ``top_n`` most likely alternatives, from
    ``row`` (an mx.array of log-probabilities over the vocabulary)."""
    import mlx.core as mx

    top: list[TopLogprob] = []
    if top_n > 0:
        ids = mx.argpartition(-row, kth=top_n - 1)[:top_n]
        values = row[ids].tolist()
        for value, tid in sorted(zip(values, ids.tolist(), strict=True), reverse=True):
            top.append(_top(tokenizer, int(tid), float(value)))
    text = _text(tokenizer, token)
    return TokenLogprob(token=text, logprob=float(row[token].item()), bytes=list(text.encode()), top_logprobs=top)


def _top(tokenizer: Any, token: int, logprob: float) -> TopLogprob:
    text = _text(tokenizer, token)
    return TopLogprob(token=text, logprob=logprob, bytes=list(text.encode()))


def _text(tokenizer: Any, token: int) -> str:
    return str(tokenizer.decode([token]))
