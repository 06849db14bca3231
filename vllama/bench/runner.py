"""Run a workload's concurrency levels against one or two servers.

With two servers, each level runs on both before the next level starts, the first server
going first on even levels and second on odd ones, so neither always meets a cooler (or
warmer) machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping

import httpx
import msgspec

from vllama.bench.drivers import Sample, send
from vllama.bench.stats import Comparison, LevelStats, compare, summarize
from vllama.bench.workload import Target, Workload, arrival_times

#: Called as requests finish: (target name, concurrency, done, total).
Progress = Callable[[str, int, int, int], None]


class Level(msgspec.Struct, kw_only=True):
    concurrency: int
    #: One per target, in the targets' order.
    results: list[LevelStats]
    comparison: Comparison | None = None


class BenchResult(msgspec.Struct, kw_only=True):
    targets: list[Target]
    workload: Workload
    levels: list[Level]


async def run_level(
    client: httpx.AsyncClient, target: Target, workload: Workload, concurrency: int, *, first: int = 0, progress: Progress | None = None
) -> LevelStats:
    """Send the level's requests, ``concurrency`` at a time, their prompts numbered from ``first``;
    with a ``rate``, at their Poisson arrival times, at most ``concurrency`` in flight."""
    if workload.rate:
        return await _open_loop(client, target, workload, concurrency, workload.rate, first=first, progress=progress)
    total = workload.requests_at(concurrency)
    samples: list[Sample] = []
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while issued < total:
            issued += 1
            samples.append(await send(client, target, workload, workload.prompt_for(first + issued - 1)))
            if progress is not None:
                progress(target.name, concurrency, len(samples), total)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    return summarize(target.name, concurrency, samples, time.perf_counter() - started)


async def _open_loop(
    client: httpx.AsyncClient, target: Target, workload: Workload, concurrency: int, rate: float, *, first: int, progress: Progress | None
) -> LevelStats:
    """Requests sent at their arrival times; a request's times count from when it is sent."""
    total = workload.requests_at(concurrency)
    samples: list[Sample] = []
    in_flight = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def arrive(index: int, at: float) -> None:
        await asyncio.sleep(max(0.0, started + at - loop.time()))
        async with in_flight:
            samples.append(await send(client, target, workload, workload.prompt_for(first + index)))
        if progress is not None:
            progress(target.name, concurrency, len(samples), total)

    schedule = arrival_times(total, rate, workload.seed + concurrency)
    await asyncio.gather(*(arrive(i, at) for i, at in enumerate(schedule)))
    return summarize(target.name, concurrency, samples, loop.time() - started)


async def run(
    targets: list[Target], workload: Workload, progress: Progress | None = None, *, headers: Mapping[str, str] | None = None
) -> BenchResult:
    """Warm each server up, then run every level on each of them; ``headers`` go with every
    request (the API key)."""
    most = max(workload.concurrency)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    limits=httpx.Limits(max_connections=most, max_keepalive_connections=most),
                    timeout=httpx.Timeout(workload.timeout, connect=30),
                    headers=headers,
                )
            )
            for _ in targets
        ]
        for client, target in zip(clients, targets, strict=True):
            for i in range(workload.warmup):
                await send(client, target, workload, workload.prompt_for(i))
        levels, first = [], workload.warmup
        for n, concurrency in enumerate(workload.concurrency):
            order = range(len(targets)) if n % 2 == 0 else reversed(range(len(targets)))
            results: dict[int, LevelStats] = {}
            for i in order:
                results[i] = await run_level(clients[i], targets[i], workload, concurrency, first=first, progress=progress)
            first += workload.requests_at(concurrency)
            stats = [results[i] for i in range(len(targets))]
            levels.append(Level(concurrency=concurrency, results=stats, comparison=compare(*stats) if len(stats) == 2 else None))
    return BenchResult(targets=targets, workload=workload, levels=levels)
