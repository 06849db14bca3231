"""What the CLI draws on stderr while it waits: a spinner with the time elapsed while a model
loads (``vllama run``, ``vllama serve --model``), and a bar per file with its speed and time
left while a model is pulled.

Drawn with rich, only when stderr is a terminal that can redraw a line (not ``TERM=dumb``);
rich leaves colours out under ``NO_COLOR``. rich is imported only when something is drawn.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.progress import Progress, TaskID


def animated() -> bool:
    """Whether stderr is a terminal that can redraw a line."""
    return sys.stderr.isatty() and os.environ.get("TERM", "") not in ("dumb", "unknown")


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def elapsed_words(seconds: float) -> str:
    """``7s``, ``1m05s``: the time shown beside a spinner."""
    s = int(seconds)
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s"


class _Waiting:
    """A spinner and ``text (12s)``, the seconds counted from when it was made."""

    def __init__(self, text: str) -> None:
        from rich.spinner import Spinner

        self.text = text
        self.start = time.monotonic()
        self.spinner = Spinner("dots", style="status.spinner")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self.spinner.update(text=f"{self.text} ({elapsed_words(time.monotonic() - self.start)})")
        yield self.spinner


@contextlib.contextmanager
def waiting(text: str) -> Iterator[None]:
    """Show a spinner with ``text`` and the time elapsed until the block ends, then clear it.
    Shows nothing where stderr cannot redraw a line."""
    if not animated():
        yield
        return
    from rich.live import Live

    live = Live(_Waiting(text), console=stderr_console(), refresh_per_second=8, transient=True, redirect_stdout=False)
    live.start(refresh=True)  # drawn at once, however short the wait
    try:
        yield
    finally:
        live.stop()


class FileBars:
    """rich bars for the files of one step (a pull's layers, a create's uploads): percentage,
    size, speed and time left, each bar kept on screen once its file is done."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress: Progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=stderr_console(),
            refresh_per_second=8,
        )
        self.tasks: dict[str, TaskID] = {}
        self.progress.start()

    def update(self, key: str, label: str, completed: int, total: int) -> None:
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[key], completed=min(completed, total), total=total)

    def stop(self) -> None:
        self.progress.stop()


@contextlib.contextmanager
def requests_progress() -> Iterator[Callable[[str, int, int, int], None] | None]:
    """``vllama bench``'s progress: a bar per server and level (``NAME level 8``) with the
    requests done, the time taken and the time left, cleared at the end; None off a terminal.
    The callback takes (server name, concurrency, requests done, requests in the level)."""
    if not animated():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("requests"), TimeElapsedColumn())
    bars = Progress(*columns, TimeRemainingColumn(), console=stderr_console(), transient=True)
    tasks: dict[tuple[str, int], TaskID] = {}

    def show(name: str, concurrency: int, done: int, total: int) -> None:
        if (name, concurrency) not in tasks:
            tasks[name, concurrency] = bars.add_task(f"{name} level {concurrency}", total=total)
        bars.update(tasks[name, concurrency], completed=done)

    with bars:
        yield show


class PreloadSpinner(logging.Filter):
    """``vllama serve --model``: a spinner naming the model loading and its time, below the
    server's log lines, until every preloaded model has loaded or failed.

    The server logs one line per preloaded model when it is done (:meth:`vllama.core.Vllama.preload`);
    this filter sees those lines go by on the log handler, whose stream it routes through rich
    meanwhile so that they print above the spinner."""

    DONE = ("preloaded %s", "could not preload %s")

    def __init__(self, models: list[str], handler: logging.StreamHandler[Any]) -> None:
        super().__init__()
        from rich.file_proxy import FileProxy
        from rich.live import Live

        self.pending = list(models)
        self.handler = handler
        self.stream = handler.stream
        self.waiting = _Waiting(self._text())
        console = stderr_console()
        self.live = Live(self.waiting, console=console, refresh_per_second=8, transient=True, redirect_stdout=False, redirect_stderr=False)
        handler.setStream(FileProxy(console, self.stream))
        handler.addFilter(self)
        self.live.start(refresh=True)

    def _text(self) -> str:
        more = f" (then {len(self.pending) - 1} more)" if len(self.pending) > 1 else ""
        return f"Loading {self.pending[0]}{more}"

    def filter(self, record: logging.LogRecord) -> bool:
        if self.pending and record.name == "vllama" and str(record.msg).startswith(self.DONE):
            self.pending.pop(0)
            if self.pending:
                self.waiting.text, self.waiting.start = self._text(), time.monotonic()
            else:
                self.stop()
        return True

    def stop(self) -> None:
        """Clear the spinner and give the log handler its stream back (again is harmless)."""
        self.live.stop()
        self.handler.setStream(self.stream)
        self.handler.removeFilter(self)
