"""An embedded server: vllama on a background thread, for apps and tests.

with EmbeddedServer() as server:
    ollama.Client(host=server.url).chat(...)
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

import uvicorn

from vllama.core import Vllama
from vllama.logs import RequestLog
from vllama.server.app import create_app


class EmbeddedServer:
    """Serve a :class:`Vllama` over HTTP on a thread; port 0 picks a free port."""

    def __init__(self, vllama: Vllama | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.vllama = vllama or Vllama()
        app = RequestLog(create_app(self.vllama), access_log=self.vllama.settings.access_log)
        config = uvicorn.Config(app, host=host, port=port, log_config=None, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="vllama-server", daemon=True)
        self.url = ""

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def start(self, timeout: float = 30.0) -> str:
        """Start serving; return the base URL once it accepts connections."""
        self._thread.start()
        for _ in range(int(timeout * 100)):
            if self._server.started:
                break
            if not self._thread.is_alive():
                raise RuntimeError("the embedded vllama server failed to start")
            threading.Event().wait(0.01)
        else:
            raise TimeoutError("the embedded vllama server did not start in time")
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=60)

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
