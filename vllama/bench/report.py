"""A benchmark's result as a plain-text table, as JSON or as CSV."""

from __future__ import annotations

import csv
import io

import msgspec

from vllama.bench.runner import BenchResult, Level
from vllama.bench.stats import Comparison, LevelStats, Percentiles

HEADER = ["server", "conc", "reqs", "errs", "req/s", "tok/s", "TTFT ms p50/p95/p99", "ITL ms p50/p95/p99", "E2E s p50/p95/p99"]
NUMERIC = {1, 2, 3, 4, 5}
#: Where ``sessions`` tables have their ``turn`` column.
TURN = 2


def to_json(result: BenchResult) -> str:
    return msgspec.json.format(msgspec.json.encode(result), indent=2).decode()


#: The CSV's columns: one row per server and concurrency level, and for ``sessions`` per turn too
#: (``turn`` empty: all turns); times in milliseconds (end-to-end in seconds).
CSV_COLUMNS = (
    "server api model workload concurrency turn rate requests errors duration_s requests_per_s tokens_per_s output_tokens prompt_tokens"
    " ttft_ms_p50 ttft_ms_p95 ttft_ms_p99 itl_ms_p50 itl_ms_p95 itl_ms_p99 tpot_ms_p50 e2e_s_p50 e2e_s_p95 e2e_s_p99"
).split()


def _cells(p: Percentiles | None, scale: float, *quantiles: str) -> list[str]:
    return [f"{getattr(p, q) * scale:.4f}" if p else "" for q in quantiles]


def _stats(level: Level) -> list[LevelStats]:
    """A level's stats: each server's, then each turn's (``sessions``)."""
    return [*level.results, *(s for turn in level.turns for s in turn.results)]


def to_csv(result: BenchResult) -> str:
    """The results as CSV, one row per server and level, and per turn (:data:`CSV_COLUMNS`); a missing value is empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    targets = {t.name: t for t in result.targets}
    for level in result.levels:
        for s in _stats(level):
            t = targets[s.target]
            writer.writerow(
                [
                    s.target,
                    t.api,
                    t.model,
                    result.workload.kind,
                    s.concurrency,
                    "" if s.turn is None else s.turn,
                    f"{result.workload.rate:g}" if result.workload.rate else "",
                    s.requests,
                    s.errors,
                    f"{s.duration_s:.4f}",
                    f"{s.requests_per_s:.4f}",
                    f"{s.tokens_per_s:.4f}",
                    s.output_tokens,
                    s.prompt_tokens,
                    *_cells(s.ttft_s, 1000, "p50", "p95", "p99"),
                    *_cells(s.itl_s, 1000, "p50", "p95", "p99"),
                    *_cells(s.tpot_s, 1000, "p50"),
                    *_cells(s.e2e_s, 1, "p50", "p95", "p99"),
                ]
            )
    return out.getvalue()


def _ms(value: float) -> str:
    ms = value * 1000
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def _spread(p: Percentiles | None, scale: str) -> str:
    if p is None:
        return "-"
    cell = _ms if scale == "ms" else (lambda v: f"{v:.2f}")
    return " / ".join(cell(v) for v in (p.p50, p.p95, p.p99))


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _row(s: LevelStats) -> list[str]:
    tokens = f"{s.tokens_per_s:.1f}" + ("*" if s.estimated_tokens else "")
    return [
        s.target,
        str(s.concurrency),
        str(s.requests),
        str(s.errors),
        f"{s.requests_per_s:.2f}",
        tokens,
        _spread(s.ttft_s, "ms"),
        _spread(s.itl_s, "ms"),
        _spread(s.e2e_s, "s"),
    ]


def _ratio_row(concurrency: int, c: Comparison) -> list[str]:
    return ["ratio", str(concurrency), "", "", "", _times(c.throughput_ratio), _times(c.ttft_ratio), "", _times(c.latency_ratio)]


def _turned(row: list[str], turn: int | None) -> list[str]:
    """The row with its ``turn`` cell: the number, or ``all``."""
    return [*row[:TURN], "all" if turn is None else str(turn), *row[TURN:]]


def _align(rows: list[list[str]], numeric: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]


def _level_rows(level: Level) -> list[list[str]]:
    rows = [_row(s) for s in level.results]
    if level.comparison is not None:
        rows.append(_ratio_row(level.concurrency, level.comparison))
    return rows


def _session_rows(level: Level) -> list[list[str]]:
    """All turns' rows, then each turn's, each block with its ratio row."""
    rows = [_turned(row, None) for row in _level_rows(level)]
    for turn in level.turns:
        rows += [_turned(_row(s), turn.turn) for s in turn.results]
        if turn.comparison is not None:
            rows.append(_turned(_ratio_row(level.concurrency, turn.comparison), turn.turn))
    return rows


def table(result: BenchResult) -> str:
    """The results, one row per server and level, with a ratio row per level for two servers;
    ``sessions`` adds a ``turn`` column and each turn's rows under the level's."""
    sessions = result.workload.kind == "sessions"
    rows = [[*HEADER[:TURN], "turn", *HEADER[TURN:]] if sessions else HEADER]
    for level in result.levels:
        rows += _session_rows(level) if sessions else _level_rows(level)
    numeric = {TURN, *(i + 1 if i >= TURN else i for i in NUMERIC)} if sessions else NUMERIC
    lines = _align(rows, numeric)
    w = result.workload
    lines.insert(
        0,
        f"{', '.join(f'{t.name} ({t.api}, {t.model})' for t in result.targets)}: "
        f"{w.describe()}, {w.num_predict} tokens, "
        f"{'streaming' if w.stream else 'not streaming'}, temperature {w.temperature:g}"
        + (f", open loop at {w.rate:g} req/s (Poisson, seed {w.seed})" if w.rate else ""),
    )
    notes = []
    if len(result.targets) == 2:
        a, b = (t.name for t in result.targets)
        notes.append(f"ratio: {a} vs {b} (tok/s {a}÷{b}; TTFT and E2E p50 {b}÷{a}): above 1, {a} is faster.")
    if sessions:
        notes.append(
            "turn all: every request of the level; turn N: each conversation's Nth request, req/s and tok/s over that turn's span."
        )
    if any(s.estimated_tokens for level in result.levels for s in level.results):
        notes.append("*: the server reported no token usage; tokens are counted as streamed chunks.")
    for level in result.levels:
        notes += [
            f"{s.target} level {s.concurrency}: {s.errors} of {s.requests} failed; first: {s.first_error}"
            for s in level.results
            if s.errors
        ]
    return "\n".join([*lines, *([""] + notes if notes else [])])
