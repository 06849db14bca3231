"""Ollama's duration values: keep_alive as seconds (number) or a Go duration string."""

from __future__ import annotations

import math
import re

FOREVER = math.inf

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Parse a Go ``time.ParseDuration`` string ("5m", "1h30m", "-1s", "0") into seconds."""
    s = text.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    if s[:1] in ("+", "-"):
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            if re.fullmatch(r"\d+(\.\d*)?", s[pos:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def keep_alive_seconds(value: float | int | str) -> float:
    """Normalise a keep_alive value: seconds, 0 = unload now, ``FOREVER`` for any negative."""
    if isinstance(value, bool):
        raise ValueError("keep_alive must be a number or a duration string")
    seconds = float(value) if isinstance(value, (int, float)) else parse_go_duration(value)
    return FOREVER if seconds < 0 else seconds


def env_keep_alive(text: str) -> float:
    """Read OLLAMA_KEEP_ALIVE / VLLAMA_KEEP_ALIVE, which also accept bare integers as seconds."""
    try:
        return keep_alive_seconds(int(text))
    except ValueError:
        return keep_alive_seconds(text)
