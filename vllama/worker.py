"""Engine isolation: run a backend's engine in its own process and talk to it over a pipe.

A native crash or an out-of-memory kill in the worker becomes an
:class:`~vllama.errors.EngineError` for the requests it was serving; the server lives on
and the next request loads the model again. Unloading ends the process, so the memory
really returns to the system.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import threading
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from typing import Any

from vllama import errors, logs, memory
from vllama.engine import Backend, Engine
from vllama.types import ChatRequest, EmbedRequest, Embeddings, EngineInfo, Event, GenerateRequest, Hardware, LoadSettings, ModelRef

log = logging.getLogger("vllama.worker")

_END = object()


_BY_STATUS: dict[int, type[errors.VllamaError]] = {400: errors.BadRequest, 404: errors.NotFound, 503: errors.EngineError}


def _error(cls_name: str, message: str, status: int) -> errors.VllamaError:
    """Rebuild an engine's error in the parent: the same core class, else one of its status."""
    cls = getattr(errors, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.VllamaError)) or cls.status != status:
        cls = _BY_STATUS.get(status, errors.EngineError)
    err = cls.__new__(cls)
    errors.VllamaError.__init__(err, message)
    return err


def _describe(exc: BaseException) -> tuple[str, str, int]:
    if isinstance(exc, errors.VllamaError):
        return type(exc).__name__, exc.message, exc.status
    if isinstance(exc, MemoryError):
        return "EngineError", "the engine ran out of memory: it needs more than its limit (VLLAMA_WORKER_MEMORY) or than the machine has", 500
    return "EngineError", f"{type(exc).__name__}: {exc}", 500


class WorkerEngine(Engine):
    """The parent's handle on an engine running in a worker process."""

    def __init__(self, model_name: str, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self._name = model_name
        self._process = process
        self._conn = conn
        self._pending: dict[int, asyncio.Queue[Any]] = {}
        self._ids = itertools.count(1)
        self._info = EngineInfo()
        self._loop = asyncio.get_running_loop()
        self._send_lock = threading.Lock()
        self.alive = True

    @classmethod
    async def start(cls, backend: type[Backend], model: ModelRef, hardware: Hardware, settings: LoadSettings,
                    *, memory_limit: int | None = None) -> WorkerEngine:  # fmt: skip
        """Spawn the worker and wait until the model is loaded (or failed to). The worker
        may hold at most ``memory_limit`` bytes of private memory (see :mod:`vllama.memory`)."""
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=_worker_main, args=(child, backend, model, hardware, settings, logs.setup(), memory_limit),
            name=f"vllama-engine {model.name}", daemon=True,
        )  # fmt: skip
        process.start()
        child.close()
        self = cls(model.name, process, parent)
        try:
            first = await asyncio.to_thread(self._recv)
        except (EOFError, OSError):
            await asyncio.to_thread(process.join, 5)
            raise errors.EngineError(
                f"the engine for {model.name} exited while loading (exit code {process.exitcode})"
            ) from None
        if first[0] == "load_error":
            await asyncio.to_thread(process.join, 5)
            raise _error(first[1], first[2], first[3])
        self._info = first[1]
        threading.Thread(target=self._read_loop, name=f"vllama-reader {model.name}", daemon=True).start()
        return self

    def _recv(self) -> Any:
        return self._conn.recv()

    def _read_loop(self) -> None:
        try:
            while True:
                try:
                    msg = self._conn.recv()
                except (EOFError, OSError):
                    break
                self._loop.call_soon_threadsafe(self._dispatch, msg)
            self._process.join(5)
            self._loop.call_soon_threadsafe(self._died)
        except RuntimeError:  # the event loop closed first: nobody is waiting any more
            pass

    def _dispatch(self, msg: tuple[Any, ...]) -> None:
        kind, rid = msg[0], msg[1]
        if kind == "info":
            self._info = msg[2]
            return
        queue = self._pending.get(rid)
        if queue is None:
            return
        if kind == "event":
            queue.put_nowait(msg[2])
        elif kind == "result":
            queue.put_nowait(msg[2])
            queue.put_nowait(_END)
        elif kind == "end":
            queue.put_nowait(_END)
        elif kind == "error":
            queue.put_nowait(_error(msg[2], msg[3], msg[4]))

    def _died(self) -> None:
        if not self.alive:
            return
        self.alive = False
        code = self._process.exitcode
        err = errors.EngineError(f"the engine for {self._name} stopped unexpectedly (exit code {code}); it will reload on the next request")
        for queue in self._pending.values():
            queue.put_nowait(err)

    def _send(self, msg: tuple[Any, ...]) -> None:
        if not self.alive:
            raise errors.EngineError(f"the engine for {self._name} is not running")
        with self._send_lock:
            try:
                self._conn.send(msg)
            except (OSError, BrokenPipeError):
                raise errors.EngineError(f"the engine for {self._name} is not running") from None

    async def _run(self, op: str, request: Any) -> AsyncIterator[Any]:
        rid = next(self._ids)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._pending[rid] = queue
        finished = False
        try:
            self._send((op, rid, request))
            while True:
                item = await queue.get()
                if item is _END:
                    finished = True
                    return
                if isinstance(item, Exception):
                    finished = True
                    raise item
                yield item
        finally:
            del self._pending[rid]
            if not finished and self.alive:
                try:
                    self._send(("cancel", rid))
                except errors.EngineError:
                    pass

    def generate(self, request: GenerateRequest) -> AsyncIterator[Event]:
        return self._run("generate", request)

    def chat(self, request: ChatRequest) -> AsyncIterator[Event]:
        return self._run("chat", request)

    async def embed(self, request: EmbedRequest) -> Embeddings:
        async for result in self._run("embed", request):
            return result
        raise errors.EngineError("the engine returned no embeddings")

    def info(self) -> EngineInfo:
        return self._info

    async def close(self) -> None:
        if self.alive:
            try:
                self._send(("close",))
            except errors.EngineError:
                pass
        await asyncio.to_thread(self._process.join, 30)
        if self._process.is_alive():
            self._process.kill()
            await asyncio.to_thread(self._process.join, 5)
        self.alive = False
        self._conn.close()


# -- the worker process ------------------------------------------------------------------


def _worker_main(conn: Connection, backend: type[Backend], model: ModelRef, hardware: Hardware, settings: LoadSettings,
                 log_setup: dict[str, Any], memory_limit: int | None = None) -> None:  # fmt: skip
    logs.configure(**log_setup, model=model.name)
    memory.limit_this_process(memory_limit)
    asyncio.run(_serve(conn, backend, model, hardware, settings))


async def _serve(conn: Connection, backend: type[Backend], model: ModelRef, hardware: Hardware, settings: LoadSettings) -> None:
    try:
        engine = await backend.load(model, hardware, settings)
    except BaseException as exc:  # report every load failure to the parent
        conn.send(("load_error", *_describe(exc)))
        return
    conn.send(("loaded", engine.info()))
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue()

    def read() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                msg = ("close",)
            loop.call_soon_threadsafe(inbox.put_nowait, msg)
            if msg[0] == "close":
                return

    threading.Thread(target=read, daemon=True).start()
    tasks: dict[int, asyncio.Task[None]] = {}

    async def stream(rid: int, events: AsyncIterator[Event]) -> None:
        try:
            async for event in events:
                conn.send(("event", rid, event))
            conn.send(("end", rid))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            conn.send(("error", rid, *_describe(exc)))
        finally:
            tasks.pop(rid, None)
            conn.send(("info", 0, engine.info()))

    async def embed(rid: int, request: EmbedRequest) -> None:
        try:
            conn.send(("result", rid, await engine.embed(request)))
        except BaseException as exc:
            conn.send(("error", rid, *_describe(exc)))
        finally:
            tasks.pop(rid, None)
            conn.send(("info", 0, engine.info()))

    while True:
        msg = await inbox.get()
        op = msg[0]
        if op == "close":
            break
        if op == "cancel":
            if (task := tasks.get(msg[1])) is not None:
                task.cancel()
        elif op == "generate":
            tasks[msg[1]] = asyncio.create_task(stream(msg[1], engine.generate(msg[2])))
        elif op == "chat":
            tasks[msg[1]] = asyncio.create_task(stream(msg[1], engine.chat(msg[2])))
        elif op == "embed":
            tasks[msg[1]] = asyncio.create_task(embed(msg[1], msg[2]))
    for task in list(tasks.values()):
        task.cancel()
    await engine.close()
