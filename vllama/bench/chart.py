"""A benchmark's result as an SVG chart: generated tokens/s and TTFT p50 by concurrency level,
one line per server. Plain SVG written here (no plotting library), the same bytes for the
same result."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape

from vllama.bench.runner import BenchResult
from vllama.bench.stats import LevelStats

#: Line colours, one per server in order (colour-blind-safe Okabe-Ito).
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
PANEL_W, PANEL_H = 380, 260
LEFT, TOP, GAP, BOTTOM = 64, 48, 80, 84


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value * (1 - 1e-9))


def _number(value: float) -> str:
    return f"{value:g}" if value >= 1 or value == 0 else f"{value:.2g}"


def _panel(x0: float, title: str, levels: Sequence[int], lines: dict[str, list[float | None]], colours: dict[str, str]) -> list[str]:
    """One chart: axes, grid, ticks and a polyline with markers per server."""
    top = max((v for values in lines.values() for v in values if v is not None), default=0.0)
    ymax = nice_ceiling(top)
    step = PANEL_W / max(len(levels) - 1, 1)

    def x(i: int) -> float:
        return x0 + (i * step if len(levels) > 1 else PANEL_W / 2)

    def y(v: float) -> float:
        return TOP + PANEL_H - v / ymax * PANEL_H

    out = [f'<text x="{x0 + PANEL_W / 2:.1f}" y="{TOP - 18}" text-anchor="middle" font-weight="bold">{escape(title)}</text>']
    for k in range(6):
        v = ymax * k / 5
        out.append(f'<line x1="{x0}" y1="{y(v):.1f}" x2="{x0 + PANEL_W}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{_number(v)}</text>')
    for i, level in enumerate(levels):
        out.append(f'<text x="{x(i):.1f}" y="{TOP + PANEL_H + 18}" text-anchor="middle">{level}</text>')
    out.append(f'<text x="{x0 + PANEL_W / 2:.1f}" y="{TOP + PANEL_H + 38}" text-anchor="middle">concurrency</text>')
    out.append(f'<rect x="{x0}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#888"/>')
    for name, values in lines.items():
        points = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
        if not points:
            continue
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        out.append(
            f'<polyline class="series" data-server="{escape(name)}" points="{path}" fill="none" stroke="{colours[name]}" stroke-width="2"/>'
        )
        out += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colours[name]}"/>' for px, py in points]
    return out


def _ttft_ms(s: LevelStats) -> float | None:
    return s.ttft_s.p50 * 1000 if s.ttft_s else None


def svg(result: BenchResult) -> str:
    """The chart of ``result``: tokens/s on the left, TTFT p50 in ms on the right."""
    levels = [level.concurrency for level in result.levels]
    names = [t.name for t in result.targets]
    colours = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)}

    def series(metric: Callable[[LevelStats], float | None]) -> dict[str, list[float | None]]:
        by_level = [{s.target: s for s in level.results} for level in result.levels]
        answered = [{name: s for name, s in stats.items() if s.errors < s.requests} for stats in by_level]
        return {name: [metric(stats[name]) if name in stats else None for stats in answered] for name in names}

    width, height = LEFT + 2 * PANEL_W + GAP + 24, TOP + PANEL_H + BOTTOM + 18 * len(names)
    w = result.workload
    caption = f"{w.num_predict} tokens per request, {w.describe()}" + (f", open loop at {w.rate:g} req/s" if w.rate else "")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        *_panel(LEFT, "Generated tokens/s", levels, series(lambda s: s.tokens_per_s), colours),
        *_panel(LEFT + PANEL_W + GAP, "Time to first token, p50 (ms)", levels, series(_ttft_ms), colours),
    ]
    legend_y = TOP + PANEL_H + 62
    for i, name in enumerate(names):
        ly = legend_y + 18 * i
        parts.append(f'<line x1="{LEFT}" y1="{ly}" x2="{LEFT + 24}" y2="{ly}" stroke="{colours[name]}" stroke-width="3"/>')
        parts.append(f'<text x="{LEFT + 32}" y="{ly + 4}">{escape(name)}</text>')
    parts.append(f'<text x="{width - 24}" y="{legend_y + 4}" text-anchor="end" fill="#555">{escape(caption)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
