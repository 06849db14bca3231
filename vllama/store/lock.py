"""One lock over the store, across the server's threads and any other process on the same
directory: an ``flock`` on the store's directory itself, so the lock adds no file to the store."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: the thread lock alone
    fcntl = None  # type: ignore[assignment]


class StoreLock:
    """Reentrant within a thread; held only for reads and writes of manifests and small blobs,
    never while large files are copied, so a list or show waits at most a manifest write."""

    def __init__(self, path: Path) -> None:
        """``path``: the directory to lock."""
        self._path = path
        self._threads = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._threads:
            if self._depth == 0:
                self._acquire_file()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release_file()

    def _acquire_file(self) -> None:
        if fcntl is None:
            return
        self._path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _release_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None
