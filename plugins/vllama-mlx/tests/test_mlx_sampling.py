"""Ollama's options mapped to mlx-lm samplers and logits processors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllama.errors import BadRequest, Unsupported
from vllama.types import SamplingOptions
from vllama_mlx.sampling import build, plan

VOCAB = 49152
options = st.builds(
    SamplingOptions,
    temperature=st.floats(-1, 3),
    top_k=st.integers(-5, VOCAB + 5),
    top_p=st.floats(-0.5, 1.5),
    min_p=st.floats(0, 1),
    seed=st.none() | st.integers(-1, 2**31),
    repeat_penalty=st.floats(0, 3),
    repeat_last_n=st.integers(-1, 512),
    presence_penalty=st.floats(-2, 2),
    frequency_penalty=st.floats(-2, 2),
)


@given(options)
def test_every_valid_option_set_maps_to_a_plan(o: SamplingOptions) -> None:
    p = plan(o, vocab_size=VOCAB, n_ctx=2048)
    assert p.greedy == (o.temperature <= 0)
    assert p.top_k == (o.top_k if 0 < o.top_k < VOCAB else 0)
    assert p.top_p == (o.top_p if 0 < o.top_p < 1 else 0)
    assert p.min_p == (o.min_p if o.min_p < 1 else 0)
    assert p.penalty_window == (2048 if o.repeat_last_n < 0 else o.repeat_last_n)
    if o.repeat_last_n == 0:
        assert not p.penalized
    else:
        assert p.repetition_penalty == (None if o.repeat_penalty == 1.0 else o.repeat_penalty)
        assert p.presence_penalty == (o.presence_penalty or None)
        assert p.frequency_penalty == (o.frequency_penalty or None)
    if o.seed is not None and o.seed >= 0:
        assert p.seed == o.seed
    else:
        assert 0 <= p.seed < 2**32


@pytest.mark.parametrize(
    "changes, error, message",
    [
        ({"typical_p": 0.9}, Unsupported, "typical_p is not supported"),
        ({"min_p": 1.5}, BadRequest, "min_p must be between 0 and 1"),
        ({"repeat_penalty": -1.0}, BadRequest, "repeat_penalty must not be negative"),
    ],
)
def test_what_mlx_cannot_do_is_refused(changes: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        plan(SamplingOptions(**changes), vocab_size=VOCAB, n_ctx=2048)


def test_seeded_samplers_repeat_and_seeds_differ() -> None:
    import mlx.core as mx

    logits = mx.random.normal((1, 64), key=mx.random.key(0))
    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)

    def draws(seed: int) -> list[int]:
        sampler, _ = build(plan(SamplingOptions(temperature=1.5, top_k=0, top_p=1.0, seed=seed), vocab_size=64, n_ctx=64))
        return [sampler(logprobs).item() for _ in range(12)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    assert len(set(draws(7))) > 1, "successive draws advance the key"


def test_greedy_shares_one_sampler_and_penalties_become_processors() -> None:
    from mlx_lm.sample_utils import greedy_sampler

    sampler, processors = build(plan(SamplingOptions(temperature=0, repeat_penalty=1.3, presence_penalty=0.5), vocab_size=VOCAB, n_ctx=64))
    assert sampler is greedy_sampler
    assert len(processors) == 2
    _, none = build(plan(SamplingOptions(temperature=0, repeat_penalty=1.3, repeat_last_n=0), vocab_size=VOCAB, n_ctx=64))
    assert none == []


def test_top_k_keeps_only_the_k_best() -> None:
    import mlx.core as mx

    logprobs = mx.log(mx.softmax(mx.arange(32, dtype=mx.float32)[None] / 4, axis=-1))
    sampler, _ = build(plan(SamplingOptions(temperature=5.0, top_k=3, top_p=1.0, seed=1), vocab_size=32, n_ctx=64))
    assert {sampler(logprobs).item() for _ in range(40)} <= {29, 30, 31}
