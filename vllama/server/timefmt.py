"""Timestamps as Ollama writes them (RFC 3339, UTC, nanosecond precision)."""

from __future__ import annotations

import datetime as dt
import math
import time


def rfc3339(seconds: float | None = None) -> str:
    """``2026-11-22T04:30:00.123456789Z`` for a Unix time (now by default); far future for inf."""
    if seconds is None:
        ns = time.time_ns()
    elif math.isinf(seconds):
        return "2318-08-22T00:00:00Z"
    else:
        ns = int(seconds * 1e9)
    base = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns % 1_000_000_000:09d}Z"
