"""Summaries of a level's samples, and the ratios between two servers."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from vllama.bench.drivers import Sample


class Percentiles(msgspec.Struct, frozen=True, kw_only=True):
    """A distribution in seconds."""

    mean: float
    p50: float
    p95: float
    p99: float


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, interpolated linearly."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def distribution(values: Sequence[float]) -> Percentiles | None:
    if not values:
        return None
    ordered = sorted(values)
    return Percentiles(
        mean=sum(ordered) / len(ordered),
        p50=percentile(ordered, 0.50),
        p95=percentile(ordered, 0.95),
        p99=percentile(ordered, 0.99),
    )


class LevelStats(msgspec.Struct, kw_only=True):
    """One server at one concurrency level, or (``sessions``) at one turn of a level."""

    target: str
    concurrency: int
    #: The conversations' turn these requests were (from 1); None: all of the level's requests.
    turn: int | None = None
    requests: int
    errors: int
    #: The first error's message, to tell what went wrong.
    first_error: str | None = None
    duration_s: float
    requests_per_s: float
    output_tokens: int
    prompt_tokens: int
    #: Generated tokens per second, all requests together.
    tokens_per_s: float
    #: Requests whose tokens were counted from streamed chunks (the server reported no usage).
    estimated_tokens: int = 0
    #: Time to first token (streaming only).
    ttft_s: Percentiles | None = None
    #: Gaps between streamed chunks, all requests pooled (streaming only).
    itl_s: Percentiles | None = None
    #: Mean time per generated token after the first, per request (streaming only).
    tpot_s: Percentiles | None = None
    #: End-to-end latency.
    e2e_s: Percentiles | None = None


def summarize(target: str, concurrency: int, samples: Sequence[Sample], duration: float, *, turn: int | None = None) -> LevelStats:
    ok = [s for s in samples if s.ok]
    failed = [s for s in samples if not s.ok]
    output = sum(s.tokens for s in ok)
    ttfts = [s.ttft for s in ok if s.ttft is not None]
    tpots = [(s.latency - s.ttft) / (s.tokens - 1) for s in ok if s.ttft is not None and s.tokens > 1]
    return LevelStats(
        target=target,
        concurrency=concurrency,
        turn=turn,
        requests=len(samples),
        errors=len(failed),
        first_error=failed[0].error if failed else None,
        duration_s=duration,
        requests_per_s=len(ok) / duration if duration > 0 else 0.0,
        output_tokens=output,
        prompt_tokens=sum(s.prompt_tokens for s in ok),
        tokens_per_s=output / duration if duration > 0 else 0.0,
        estimated_tokens=sum(s.estimated for s in ok),
        ttft_s=distribution(ttfts),
        itl_s=distribution([gap for s in ok for gap in s.gaps]),
        tpot_s=distribution(tpots),
        e2e_s=distribution([s.latency for s in ok]),
    )


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    """The first server against the second at one level. Every ratio is oriented so that
    above 1 means the first server is faster; None where either side has no value."""

    #: First tokens/s ÷ second tokens/s.
    throughput_ratio: float | None
    #: Second TTFT p50 ÷ first TTFT p50.
    ttft_ratio: float | None
    #: Second end-to-end p50 ÷ first end-to-end p50.
    latency_ratio: float | None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or numerator <= 0 or denominator <= 0:
        return None
    return numerator / denominator


def _p50(p: Percentiles | None) -> float | None:
    return p.p50 if p else None


def compare(first: LevelStats, second: LevelStats) -> Comparison:
    return Comparison(
        throughput_ratio=_ratio(first.tokens_per_s, second.tokens_per_s),
        ttft_ratio=_ratio(_p50(second.ttft_s), _p50(first.ttft_s)),
        latency_ratio=_ratio(_p50(second.e2e_s), _p50(first.e2e_s)),
    )
