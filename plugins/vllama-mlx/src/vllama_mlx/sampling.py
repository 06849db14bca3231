"""Ollama's sampling options as mlx-lm samplers and logits processors, one set per request.

:func:`plan` checks and resolves the options (pure Python); :func:`build` makes the mlx-lm
objects. Each sampled request draws from its own PRNG key, so a seed gives the same text
whatever else runs in the batch.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vllama.errors import BadRequest, Unsupported
from vllama.types import SamplingOptions

Sampler = Callable[[Any], Any]
LogitsProcessor = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class SamplerPlan:
    """Resolved sampling for one request: 0 or None turns a step off."""

    #: 0 means greedy (argmax).
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    seed: int
    repetition_penalty: float | None
    presence_penalty: float | None
    frequency_penalty: float | None
    #: Tokens the penalties look back over.
    penalty_window: int

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def penalized(self) -> bool:
        return any(p is not None for p in (self.repetition_penalty, self.presence_penalty, self.frequency_penalty))


def plan(options: SamplingOptions, *, vocab_size: int, n_ctx: int) -> SamplerPlan:
    """Check ``options`` and resolve them for a model with ``vocab_size`` tokens."""
    if 0 < options.typical_p < 1:
        raise Unsupported("typical_p is not supported by the mlx backend")
    if not 0 <= options.min_p <= 1:
        raise BadRequest("min_p must be between 0 and 1")
    if options.repeat_penalty < 0:
        raise BadRequest("repeat_penalty must not be negative")
    window = n_ctx if options.repeat_last_n < 0 else options.repeat_last_n
    penalties = (
        options.repeat_penalty if options.repeat_penalty != 1.0 else None,
        options.presence_penalty or None,
        options.frequency_penalty or None,
    )
    if window == 0:
        penalties = (None, None, None)
    return SamplerPlan(
        temperature=max(0.0, options.temperature),
        top_k=options.top_k if 0 < options.top_k < vocab_size else 0,
        top_p=options.top_p if 0 < options.top_p < 1 else 0.0,
        min_p=options.min_p if options.min_p < 1 else 0.0,
        seed=options.seed if options.seed is not None and options.seed >= 0 else random.getrandbits(32),
        repetition_penalty=penalties[0],
        presence_penalty=penalties[1],
        frequency_penalty=penalties[2],
        penalty_window=window,
    )


def build(p: SamplerPlan) -> tuple[Sampler, list[LogitsProcessor]]:
    """The sampler and logits processors for mlx-lm's BatchGenerator."""
    from mlx_lm.sample_utils import greedy_sampler, make_logits_processors

    processors = make_logits_processors(
        repetition_penalty=p.repetition_penalty,
        repetition_context_size=p.penalty_window,
        presence_penalty=p.presence_penalty,
        presence_context_size=p.penalty_window,
        frequency_penalty=p.frequency_penalty,
        frequency_context_size=p.penalty_window,
    )
    # The shared greedy sampler lets a batch of greedy requests sample in one call.
    return (greedy_sampler if p.greedy else _seeded_sampler(p)), processors


def _seeded_sampler(p: SamplerPlan) -> Sampler:
    import mlx.core as mx
    from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p

    filters: list[Callable[[Any], Any]] = []
    if p.top_k:
        filters.append(lambda x: apply_top_k(x, p.top_k))
    if p.top_p:
        filters.append(lambda x: apply_top_p(x, p.top_p))
    if p.min_p:
        filters.append(lambda x: apply_min_p(x, p.min_p))
    key = mx.random.key(p.seed)
    scale = 1.0 / p.temperature

    def sample(logprobs: Any) -> Any:
        nonlocal key
        key, draw = mx.random.split(key)
        for f in filters:
            logprobs = f(logprobs)
        return mx.random.categorical(logprobs * scale, key=draw)

    return sample
