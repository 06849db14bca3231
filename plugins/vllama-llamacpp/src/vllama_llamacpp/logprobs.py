"""Log-probabilities of sampled tokens, from the model's raw logits row."""

from __future__ import annotations

from typing import Any

import numpy as np

from vllama.types import TokenLogprob, TopLogprob
from vllama_llamacpp.native import Model


def token_logprob(model: Model, logits: Any, token: int, top_n: int) -> TokenLogprob:
    """The log-probability of ``token`` under ``logits`` (a float pointer of n_vocab values),
    with the ``top_n`` most likely alternatives."""
    row = np.ctypeslib.as_array(logits, shape=(model.n_vocab,))
    shifted = row - row.max()
    logp = shifted - np.log(np.exp(shifted).sum())
    top: list[TopLogprob] = []
    if top_n > 0:
        n = min(top_n, model.n_vocab)
        ids = np.argpartition(-logp, n - 1)[:n]
        ids = ids[np.argsort(-logp[ids])]
        top = [_top(model, int(i), float(logp[i])) for i in ids]
    data = model.piece(token)
    return TokenLogprob(
        token=data.decode("utf-8", errors="replace"),
        logprob=float(logp[token]),
        bytes=list(data),
        top_logprobs=top,
    )


def _top(model: Model, token: int, logprob: float) -> TopLogprob:
    data = model.piece(token)
    return TopLogprob(token=data.decode("utf-8", errors="replace"), logprob=logprob, bytes=list(data))
