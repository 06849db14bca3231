"""Engine isolation: run a backend's engine in its own process and talk to it over a pipe.

A native crash or an out-of-memory kill in the worker becomes an
:class:`~vllama.errors.EngineError` for the requests it was serving; the server lives on
and the next request loads the model again. Unloading ends the process, so the memory
really returns to the system.

The pipe carries msgpack frames, one message each, of two tagged unions of msgspec structs:
:data:`ToWorker` (requests, cancellations, close) and :data:`FromWorker` (the load's outcome,
each request's events, its end or its error, and fresh engine info). Requests and events are
the engine contract's own structs (:mod:`vllama.types`), so they cross as they are.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import threading
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

import msgspec

from vllama import errors, logs, memory
from vllama.engine import Backend, Engine
from vllama.types import (
    ChatRequest,
    Embeddings,
    EmbedRequest,
    EngineInfo,
    Event,
    EventStream,
    GenerateRequest,
    Hardware,
    LoadSettings,
    ModelRef,
    RerankRequest,
    RerankScores,
)

log = logging.getLogger("vllama.worker")


# -- the messages ------------------------------------------------------------------------


class _Message(msgspec.Struct, array_like=True, tag_field="op"):
    """Base of the pipe's messages: encoded as arrays whose first item is the tag."""


class Failure(msgspec.Struct, frozen=True, array_like=True):
    """An error that crosses the pipe: the nearest :mod:`vllama.errors` class of the one
    raised, its message and its HTTP status."""

    kind: str
    message: str
    status: int


class Generate(_Message, tag="generate"):
    id: int
    request: GenerateRequest


class Chat(_Message, tag="chat"):
    id: int
    request: ChatRequest


class Embed(_Message, tag="embed"):
    id: int
    request: EmbedRequest


class Rerank(_Message, tag="rerank"):
    id: int
    request: RerankRequest


class Cancel(_Message, tag="cancel"):
    """The request's client went away: stop it and free its sequence."""

    id: int


class Close(_Message, tag="close"):
    """Unload: close the engine and exit."""


class Loaded(_Message, tag="loaded"):
    info: EngineInfo


class LoadFailed(_Message, tag="load_failed"):
    error: Failure


class Output(_Message, tag="event"):
    """One event of a request's stream."""

    id: int
    event: Event


class Result(_Message, tag="result"):
    """The answer to an :class:`Embed`."""

    id: int
    embeddings: Embeddings


class Ranked(_Message, tag="ranked"):
    """The answer to a :class:`Rerank`."""

    id: int
    scores: RerankScores


class End(_Message, tag="end"):
    """A request's stream ended (after its ``Done``)."""

    id: int


class Failed(_Message, tag="failed"):
    id: int
    error: Failure


class Info(_Message, tag="info"):
    """The engine's info and :attr:`~vllama.engine.Engine.alive`, sent after each request,
    before its end (its cache and memory may have changed, its library may have died)."""

    info: EngineInfo
    alive: bool = True


ToWorker = Generate | Chat | Embed | Rerank | Cancel | Close
FromWorker = Loaded | LoadFailed | Output | Result | Ranked | End | Failed | Info

S = TypeVar("S")
R = TypeVar("R")

#: The msgpack extension code of an integer outside msgpack's 64 bits (a number in a JSON
#: schema or in a tool call's arguments), carried as its decimal digits.
_BIG_INT = 1


def _enc(value: Any) -> Any:
    """Numbers and arrays of array libraries (numpy, torch, mlx) as Python values."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} values cannot cross to the server")


def _ext(code: int, data: memoryview) -> Any:
    if code == _BIG_INT:
        return int(bytes(data))
    raise ValueError(f"unknown msgpack extension {code}")


class _Pipe(Generic[S, R]):
    """One end of the pipe: sends messages of the union ``S`` and receives those of ``R``."""

    def __init__(self, conn: Connection, decoder: msgspec.msgpack.Decoder[R]) -> None:
        self.conn = conn
        self._encoder = msgspec.msgpack.Encoder(enc_hook=_enc)
        self._decoder = decoder

    def send(self, msg: S) -> None:
        try:
            frame = self._encoder.encode(msg)
        except OverflowError:
            frame = self._encoder.encode(_big_ints(msgspec.to_builtins(msg, builtin_types=(bytes, bytearray, memoryview))))
        self.conn.send_bytes(frame)

    def recv(self) -> R:
        return self._decoder.decode(self.conn.recv_bytes())


def _server_end(conn: Connection) -> _Pipe[ToWorker, FromWorker]:
    decoder: msgspec.msgpack.Decoder[FromWorker] = msgspec.msgpack.Decoder(FromWorker, ext_hook=_ext)
    return _Pipe(conn, decoder)


def _worker_end(conn: Connection) -> _Pipe[FromWorker, ToWorker]:
    decoder: msgspec.msgpack.Decoder[ToWorker] = msgspec.msgpack.Decoder(ToWorker, ext_hook=_ext)
    return _Pipe(conn, decoder)


def _big_ints(value: Any) -> Any:
    """``value`` (builtins) with every integer msgpack cannot hold as an extension."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return msgspec.msgpack.Ext(_BIG_INT, str(value).encode())
    if isinstance(value, list):
        return [_big_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: _big_ints(v) for k, v in value.items()}
    return value


def _failure(exc: BaseException) -> Failure:
    """Describe an engine's error for the parent."""
    if isinstance(exc, errors.VllamaError):
        core = next(c for c in type(exc).__mro__ if getattr(errors, c.__name__, None) is c)
        return Failure(kind=core.__name__, message=exc.message, status=exc.status)
    if isinstance(exc, MemoryError):
        message = "the engine ran out of memory: it needs more than its limit (VLLAMA_WORKER_MEMORY) or than the machine has"
        return Failure(kind="EngineError", message=message, status=500)
    return Failure(kind="EngineError", message=f"{type(exc).__name__}: {exc}", status=500)


def _error(failure: Failure) -> errors.VllamaError:
    """Rebuild an engine's error in the parent: its core class, with its status."""
    cls = getattr(errors, failure.kind, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.VllamaError)):
        cls = errors.EngineError
    err = cls.__new__(cls)
    errors.VllamaError.__init__(err, failure.message)
    if err.status != failure.status:
        err.status = failure.status
    return err


# -- the server's side -------------------------------------------------------------------

_Reply = Output | Result | Ranked | End | errors.VllamaError


class WorkerEngine(Engine):
    """The parent's handle on an engine running in a worker process."""

    def __init__(self, model_name: str, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self._name = model_name
        self._process = process
        self._pipe = _server_end(conn)
        self._pending: dict[int, asyncio.Queue[_Reply]] = {}
        self._ids = itertools.count(1)
        self._info = EngineInfo()
        self._loop = asyncio.get_running_loop()
        self._send_lock = threading.Lock()
        self._alive = True
        self._engine_alive = True

    @property
    def alive(self) -> bool:
        """False once the worker process has exited (or the engine was closed), or once the
        engine in it said it is not alive any more."""
        return self._alive and self._engine_alive

    @classmethod
    async def start(
        cls, backend: type[Backend], model: ModelRef, hardware: Hardware, settings: LoadSettings, *, memory_limit: int | None = None
    ) -> WorkerEngine:
        """Spawn the worker and wait until the model is loaded (or failed to). The worker
        may hold at most ``memory_limit`` bytes of private memory (see :mod:`vllama.memory`)."""
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=_worker_main,
            args=(child, backend, model, hardware, settings, logs.setup(), memory_limit),
            name=f"vllama-engine {model.name}",
            daemon=True,
        )
        process.start()
        child.close()
        self = cls(model.name, process, parent)
        try:
            first = await asyncio.to_thread(self._pipe.recv)
        except (EOFError, OSError, msgspec.DecodeError):
            await asyncio.to_thread(process.join, 5)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 5)
            raise errors.EngineError(f"the engine for {model.name} exited while loading (exit code {process.exitcode})") from None
        if not isinstance(first, Loaded):
            await asyncio.to_thread(process.join, 5)
            raise _error(first.error) if isinstance(first, LoadFailed) else errors.EngineError(f"the engine for {model.name} did not load")
        self._info = first.info
        threading.Thread(target=self._read_loop, name=f"vllama-reader {model.name}", daemon=True).start()
        return self

    def _read_loop(self) -> None:
        try:
            while True:
                try:
                    msg = self._pipe.recv()
                except (EOFError, OSError):
                    break
                except msgspec.DecodeError:
                    log.exception("the engine for %s sent a message that does not decode; stopping it", self._name)
                    self._process.kill()
                    break
                self._loop.call_soon_threadsafe(self._dispatch, msg)
            self._process.join(5)
            self._loop.call_soon_threadsafe(self._died)
        except RuntimeError:  # the event loop closed first: nobody is waiting any more
            pass

    def _dispatch(self, msg: FromWorker) -> None:
        if isinstance(msg, Info):
            self._info, self._engine_alive = msg.info, msg.alive
        elif not isinstance(msg, (Loaded, LoadFailed)) and (queue := self._pending.get(msg.id)) is not None:
            queue.put_nowait(_error(msg.error) if isinstance(msg, Failed) else msg)

    def _died(self) -> None:
        if not self._alive:
            return
        self._alive = False
        code = self._process.exitcode
        err = errors.EngineError(f"the engine for {self._name} stopped unexpectedly (exit code {code}); it will reload on the next request")
        for queue in self._pending.values():
            queue.put_nowait(err)

    def _send(self, msg: ToWorker) -> None:
        if not self._alive:
            raise errors.EngineError(f"the engine for {self._name} is not running")
        with self._send_lock:
            try:
                self._pipe.send(msg)
            except (OSError, BrokenPipeError):
                raise errors.EngineError(f"the engine for {self._name} is not running") from None

    def _open(self, msg: Generate | Chat | Embed | Rerank) -> asyncio.Queue[_Reply]:
        """Send a request; its replies arrive on the queue returned."""
        queue: asyncio.Queue[_Reply] = asyncio.Queue()
        self._pending[msg.id] = queue
        try:
            self._send(msg)
        except BaseException:
            del self._pending[msg.id]
            raise
        return queue

    def _done(self, rid: int, finished: bool) -> None:
        """Forget a request; cancel it in the worker unless it finished there."""
        del self._pending[rid]
        if not finished and self._alive:
            try:
                self._send(Cancel(rid))
            except errors.EngineError:
                pass

    async def _stream(self, msg: Generate | Chat) -> EventStream:
        queue = self._open(msg)
        finished = False
        try:
            while True:
                reply = await queue.get()
                if isinstance(reply, Output):
                    yield reply.event
                    continue
                finished = True
                if isinstance(reply, errors.VllamaError):
                    raise reply
                return
        finally:
            self._done(msg.id, finished)

    def generate(self, request: GenerateRequest) -> EventStream:
        return self._stream(Generate(next(self._ids), request))

    def chat(self, request: ChatRequest) -> EventStream:
        return self._stream(Chat(next(self._ids), request))

    async def embed(self, request: EmbedRequest) -> Embeddings:
        reply = await self._call(Embed(next(self._ids), request))
        if isinstance(reply, Result):
            return reply.embeddings
        raise errors.EngineError("the engine returned no embeddings")

    async def rerank(self, request: RerankRequest) -> RerankScores:
        reply = await self._call(Rerank(next(self._ids), request))
        if isinstance(reply, Ranked):
            return reply.scores
        raise errors.EngineError("the engine returned no scores")

    async def _call(self, msg: Embed | Rerank) -> _Reply:
        """Send a request that has one answer, and return it (raise the error it failed with)."""
        queue = self._open(msg)
        finished = False
        try:
            reply = await queue.get()
            finished = True
        finally:
            self._done(msg.id, finished)
        if isinstance(reply, errors.VllamaError):
            raise reply
        return reply

    def info(self) -> EngineInfo:
        return self._info

    async def close(self) -> None:
        if self._alive:
            try:
                self._send(Close())
            except errors.EngineError:
                pass
        await asyncio.to_thread(self._process.join, 30)
        if self._process.is_alive():
            self._process.kill()
            await asyncio.to_thread(self._process.join, 5)
        self._alive = False
        self._pipe.conn.close()


# -- the worker process ------------------------------------------------------------------


def _worker_main(
    conn: Connection,
    backend: type[Backend],
    model: ModelRef,
    hardware: Hardware,
    settings: LoadSettings,
    log_setup: dict[str, Any],
    memory_limit: int | None = None,
) -> None:
    logs.configure(**log_setup, model=model.name)
    memory.limit_this_process(memory_limit)
    asyncio.run(_serve(_worker_end(conn), backend, model, hardware, settings))


async def _serve(
    pipe: _Pipe[FromWorker, ToWorker], backend: type[Backend], model: ModelRef, hardware: Hardware, settings: LoadSettings
) -> None:
    try:
        engine = await backend.load(model, hardware, settings)
        pipe.send(Loaded(engine.info()))
    except BaseException as exc:  # report every load failure to the parent
        pipe.send(LoadFailed(_failure(exc)))
        return
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[ToWorker] = asyncio.Queue()

    def read() -> None:
        while True:
            msg: ToWorker
            try:
                msg = pipe.recv()
            except (EOFError, OSError):
                msg = Close()
            except msgspec.DecodeError:
                log.exception("a message from the server does not decode; closing the engine")
                msg = Close()
            loop.call_soon_threadsafe(inbox.put_nowait, msg)
            if isinstance(msg, Close):
                return

    threading.Thread(target=read, daemon=True).start()
    tasks: dict[int, asyncio.Task[None]] = {}

    def finish(rid: int, outcome: End | Result | Ranked | Failed | None) -> None:
        """A request is over (``outcome`` None: cancelled): the engine's state, then its end."""
        tasks.pop(rid, None)
        try:
            try:
                pipe.send(Info(engine.info(), engine.alive))
            except OSError:
                raise
            except Exception:
                log.exception("the engine's info cannot be sent to the server")
            if outcome is not None:
                try:
                    pipe.send(outcome)
                except OSError:
                    raise
                except Exception as exc:  # a result that does not encode
                    pipe.send(Failed(rid, _failure(exc)))
        except OSError:  # the server is gone; the reader closes the engine
            pass

    async def stream(rid: int, events: EventStream) -> None:
        outcome: End | Failed | None = None
        try:
            async for event in events:
                pipe.send(Output(rid, event))
            outcome = End(rid)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            outcome = Failed(rid, _failure(exc))
        finally:
            finish(rid, outcome)

    async def answer(rid: int, request: EmbedRequest | RerankRequest) -> None:
        outcome: Result | Ranked | Failed | None = None
        try:
            if isinstance(request, RerankRequest):
                outcome = Ranked(rid, await engine.rerank(request))
            else:
                outcome = Result(rid, await engine.embed(request))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            outcome = Failed(rid, _failure(exc))
        finally:
            finish(rid, outcome)

    while True:
        msg = await inbox.get()
        if isinstance(msg, Close):
            break
        if isinstance(msg, Cancel):
            if (task := tasks.get(msg.id)) is not None:
                task.cancel()
        elif isinstance(msg, Generate):
            tasks[msg.id] = asyncio.create_task(stream(msg.id, engine.generate(msg.request)))
        elif isinstance(msg, Chat):
            tasks[msg.id] = asyncio.create_task(stream(msg.id, engine.chat(msg.request)))
        else:
            tasks[msg.id] = asyncio.create_task(answer(msg.id, msg.request))
    for task in list(tasks.values()):
        task.cancel()
    await engine.close()
