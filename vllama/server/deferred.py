"""Answer at once while the app is still being built.

Importing Litestar and building the app takes most of a second on a small machine. The
server binds its socket first, with this ASGI app in front: ``HEAD``/``GET /`` (the heartbeat
clients send) answer at once, every other request waits until the app is ready, and the real
app's lifespan runs as soon as it is built.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from vllama.asgi import ASGIApp, Receive, Scope, Send


class DeferredApp:
    """An ASGI app that builds the real one in a thread when the server starts."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._ready: asyncio.Future[ASGIApp] | None = None
        self._lifespan: asyncio.Task[None] | None = None
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
            return
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD") and not self.ready:
            body = b"" if scope["method"] == "HEAD" else b"Ollama is running"
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"17")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        assert self._ready is not None
        app = await asyncio.shield(self._ready)
        await app(scope, receive, send)

    @property
    def ready(self) -> bool:
        return self._ready is not None and self._ready.done() and not self._ready.exception()

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        self._ready = asyncio.get_running_loop().create_future()
        self._lifespan = asyncio.create_task(self._start_app())
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        with contextlib.suppress(Exception):
            await self._ready
            await self._to_app.put({"type": "lifespan.shutdown"})
            await self._from_app.get()
        if self._lifespan is not None:
            self._lifespan.cancel()
            with contextlib.suppress(BaseException):
                await self._lifespan
        await send({"type": "lifespan.shutdown.complete"})

    async def _start_app(self) -> None:
        assert self._ready is not None
        try:
            app = await asyncio.to_thread(self._build)
        except BaseException as e:
            self._ready.set_exception(e)
            raise
        await self._to_app.put({"type": "lifespan.startup"})
        runner = asyncio.ensure_future(
            app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, self._to_app.get, self._from_app.put)
        )
        reply = await self._from_app.get()
        if reply["type"] != "lifespan.startup.complete":
            self._ready.set_exception(RuntimeError(f"the app failed to start: {reply.get('message', reply['type'])}"))
            return
        self._ready.set_result(app)
        await runner
