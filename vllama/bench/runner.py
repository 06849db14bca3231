"""Run a workload's concurrency levels against one or two servers.

With two servers, each level runs on both before the next level starts, the first server
going first on even levels and second on odd ones, so neither always meets a cooler (or
warmer) machine.

``sessions`` runs every user's conversation at once at each level, the level's concurrency
capping the requests in flight, and reports each turn beside the level's totals.
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
from vllama.bench.workload import Chat, Target, Workload, arrival_times, conversation, session_starts

#: Called as requests finish: (target name, concurrency, done, total).
Progress = Callable[[str, int, int, int], None]


class Turn(msgspec.Struct, kw_only=True):
    """The requests of one turn of a level's conversations (``sessions``)."""

    turn: int
    #: One per target, in the targets' order.
    results: list[LevelStats]
    comparison: Comparison | None = None


class Level(msgspec.Struct, kw_only=True):
    concurrency: int
    #: One per target, in the targets' order.
    results: list[LevelStats]
    comparison: Comparison | None = None
    #: ``sessions``: the same for each turn, from the first.
    turns: list[Turn] = []


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
            samples.append(await send(client, target, workload, workload.chat_for(first + issued - 1)))
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
            samples.append(await send(client, target, workload, workload.chat_for(first + index)))
        if progress is not None:
            progress(target.name, concurrency, len(samples), total)

    schedule = arrival_times(total, rate, workload.seed + concurrency)
    await asyncio.gather(*(arrive(i, at) for i, at in enumerate(schedule)))
    return summarize(target.name, concurrency, samples, loop.time() - started)


async def run_sessions(
    client: httpx.AsyncClient, target: Target, workload: Workload, concurrency: int, *, first: int = 0, progress: Progress | None = None
) -> tuple[LevelStats, list[LevelStats]]:
    """``users`` conversations at once, numbered from ``first``: each turn sends the whole history
    with the replies received, ``think_time`` after the last reply; at most ``concurrency``
    requests in flight, a request's times counting from when it is sent. A conversation ends at
    its first failed request. Returns the level's stats and each turn's; a turn's duration runs
    from its first request sent to its last answered."""
    total = workload.requests_at(concurrency)
    timed: list[tuple[int, float, float, Sample]] = []
    done = 0
    in_flight = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    started = loop.time()
    system = workload.session_system()

    async def user(number: int, start: float) -> None:
        nonlocal done
        await asyncio.sleep(start)
        questions: list[str] = []
        replies: list[str] = []
        for turn in range(1, workload.turns + 1):
            if turn > 1:
                await asyncio.sleep(workload.think_time)
            questions.append(workload.question(number, turn))
            async with in_flight:
                sent = loop.time()
                sample = await send(client, target, workload, Chat(messages=conversation(system, questions, replies)))
            timed.append((turn, sent, loop.time(), sample))
            done += 1 if sample.ok else workload.turns - turn + 1  # the turns it will not send are done too
            if progress is not None:
                progress(target.name, concurrency, done, total)
            if not sample.ok:
                return
            replies.append(sample.reply)

    starts = session_starts(workload.users, workload.think_time)
    await asyncio.gather(*(user(first + u, at) for u, at in enumerate(starts)))
    overall = summarize(target.name, concurrency, [t[3] for t in timed], loop.time() - started)
    by_turn = []
    for turn in range(1, workload.turns + 1):
        these = [t for t in timed if t[0] == turn]
        span = max(t[2] for t in these) - min(t[1] for t in these) if these else 0.0
        by_turn.append(summarize(target.name, concurrency, [t[3] for t in these], span, turn=turn))
    return overall, by_turn


def _compared(stats: list[LevelStats]) -> Comparison | None:
    return compare(*stats) if len(stats) == 2 else None


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
                await send(client, target, workload, workload.chat_for(i))
        levels, first = [], workload.warmup
        for n, concurrency in enumerate(workload.concurrency):
            order = range(len(targets)) if n % 2 == 0 else reversed(range(len(targets)))
            results: dict[int, tuple[LevelStats, list[LevelStats]]] = {}
            for i in order:
                if workload.kind == "sessions":
                    results[i] = await run_sessions(clients[i], targets[i], workload, concurrency, first=first, progress=progress)
                else:
                    results[i] = (await run_level(clients[i], targets[i], workload, concurrency, first=first, progress=progress), [])
            first += workload.requests_at(concurrency)
            stats = [results[i][0] for i in range(len(targets))]
            turns = [list(by_turn) for by_turn in zip(*(results[i][1] for i in range(len(targets))), strict=True)]
            levels.append(
                Level(
                    concurrency=concurrency,
                    results=stats,
                    comparison=_compared(stats),
                    turns=[Turn(turn=k + 1, results=t, comparison=_compared(t)) for k, t in enumerate(turns)],
                )
            )
    return BenchResult(targets=targets, workload=workload, levels=levels)
