"""Pull progress: Ollama's progress objects, and a tqdm stand-in through which
``huggingface_hub`` reports the bytes of each file as they arrive."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import msgspec

#: Byte progress lines per file and second, at most (the last one is always sent).
RATE = 10


class Progress(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One line of /api/pull's stream: ``{"status", "digest"?, "total"?, "completed"?}``."""

    status: str
    digest: str = ""
    total: int = 0
    completed: int = 0


class Cancelled(Exception):
    """The client went away: the download stops."""


class FileProgress:
    """Reports one file's bytes as Progress lines, throttled; raises Cancelled once cancelled."""

    def __init__(self, emit: Callable[[Progress], None], status: str, digest: str, total: int, cancelled: threading.Event) -> None:
        self._emit, self._status, self._digest, self._total = emit, status, digest, total
        self._cancelled = cancelled
        self._sent = -1
        self._at = 0.0

    def __call__(self, completed: int) -> None:
        if self._cancelled.is_set():
            raise Cancelled
        now = time.monotonic()
        if completed != self._sent and (completed >= self._total or now - self._at >= 1 / RATE):
            self._sent, self._at = completed, now
            self._emit(Progress(status=self._status, digest=self._digest, total=self._total, completed=completed))

    def bar(self) -> type[Bar]:
        """A tqdm-like class for ``hf_hub_download(tqdm_class=...)`` that reports to this object."""
        return type("FileBar", (Bar,), {"report": staticmethod(self)})


class Bar:
    """The part of tqdm that ``huggingface_hub`` drives: it counts bytes written instead of drawing."""

    report: Callable[[int], None]

    def __init__(self, *args: object, initial: int = 0, total: int | None = None, **kwargs: object) -> None:
        self.n = initial
        self.total = total
        self.report(self.n)

    def update(self, n: float | None = 1) -> None:
        self.n += int(n or 0)
        self.report(self.n)

    def update_transfer(self, n: float | None = 1) -> None:
        """Bytes received from the network, reported besides bytes written: not counted twice."""

    def set_postfix_str(self, *args: object, **kwargs: object) -> None:
        """Transfer rates: not shown."""

    set_transfer_postfix_str = set_postfix_str

    def refresh(self) -> None:
        """Nothing is drawn."""

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
