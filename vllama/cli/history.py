"""The lines typed in ``vllama run``, kept across sessions as Ollama keeps ~/.ollama/history."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

#: Lines kept.
LENGTH = 1000


def history_path() -> Path:
    """Where ``vllama run`` keeps the lines typed, as Ollama keeps ~/.ollama/history."""
    return Path.home() / ".vllama" / "history"


@contextlib.contextmanager
def history() -> Iterator[None]:
    """Line editing for input(), with the lines of earlier sessions (up arrow) kept in
    :func:`history_path`."""
    try:
        import readline
    except ImportError:  # no line editing on this platform
        yield
        return
    path = history_path()
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(LENGTH)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)
