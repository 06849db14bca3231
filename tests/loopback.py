"""Stand-in HTTP servers on loopback for the tests: a base that serves a handler class on a
thread of its own while used as a context manager, and gives the handler its stand-in."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self


class StandinServer(ThreadingHTTPServer):
    """The HTTP server of a stand-in: its handlers read ``self.server.standin``."""

    daemon_threads = True

    def __init__(self, standin: Any, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.standin = standin


class Loopback:
    """A stand-in served on a free loopback port by :attr:`handler` between ``__enter__`` and
    ``__exit__``; ``url`` is where."""

    handler: ClassVar[type[BaseHTTPRequestHandler]]
    url: str

    def __enter__(self) -> Self:
        self._server = StandinServer(self, self.handler)
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()  # quick to shut down
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
