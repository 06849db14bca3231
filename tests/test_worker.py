"""The worker pipe (typed messages over msgpack, errors that keep their class and status) and
engine liveness: a worker that died, or an engine that says it died, is reloaded."""

from __future__ import annotations

import multiprocessing
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import pytest

from vllama import errors
from vllama.config import Settings
from vllama.engine import Backend, Engine
from vllama.plugins import make_plugin_manager
from vllama.probes import cpu_device
from vllama.scheduler import Scheduler
from vllama.testing.echo import EchoBackend, EchoEngine, IsolatedEchoBackend
from vllama.testing.gguf import tiny_model
from vllama.types import (
    ChatRequest,
    Delta,
    Done,
    Embeddings,
    EmbedRequest,
    EngineInfo,
    Event,
    GenerateRequest,
    Hardware,
    LoadSettings,
    Message,
    ModelRef,
    TokenLogprob,
    ToolCall,
    ToolCallFunction,
)
from vllama.worker import (
    Cancel,
    Chat,
    Close,
    Embed,
    End,
    Failed,
    FromWorker,
    Generate,
    Info,
    Loaded,
    LoadFailed,
    Output,
    Result,
    ToWorker,
    WorkerEngine,
    _error,
    _failure,
    _Pipe,
    _server_end,
    _worker_end,
)

# -- the messages ---------------------------------------------------------------------------


Pipes = tuple[_Pipe[ToWorker, FromWorker], _Pipe[FromWorker, ToWorker]]


@pytest.fixture
def pipes() -> Iterator[Pipes]:
    """(server end, worker end) of a real pipe."""
    a, b = multiprocessing.Pipe()
    try:
        yield _server_end(a), _worker_end(b)
    finally:
        a.close()
        b.close()


def _call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(function=ToolCallFunction(name=name, arguments=arguments, index=0), id="call_1")


TO_WORKER = [
    Generate(1, GenerateRequest(prompt="hi", images=[b"\x89PNG\x00"], format={"type": "object"}, think="high", context=[1, 2])),
    Chat(2, ChatRequest(messages=[Message(role="user", content="hi", tool_calls=[_call("f", x=1)])], tool_format="json")),
    Embed(3, EmbedRequest(inputs=["a", "b"], truncate=False)),
    Cancel(4),
    Close(),
]
FROM_WORKER = [
    Loaded(EngineInfo(size=10, context_length=512, parallel=4, info={"kv": 3, "dtype": "bfloat16"})),
    LoadFailed(_failure(errors.EngineError("no"))),
    Output(
        1,
        Delta(text="a", thinking="b", tool_calls=[_call("f", x=[1.5, None])], logprobs=[TokenLogprob(token="a", logprob=-0.5, bytes=[97])]),
    ),
    Output(1, Done(reason="length", prompt_tokens=3, completion_tokens=2, prompt_eval_ns=5, eval_ns=7, context=[1, 2, 3])),
    End(1),
    Result(3, Embeddings(vectors=[[0.25, -1.0]], prompt_tokens=2)),
    Failed(2, _failure(errors.ContextOverflow("too long"))),
    Info(EngineInfo(size=11), alive=False),
]


@pytest.mark.parametrize("msg", TO_WORKER, ids=lambda m: type(m).__name__)
def test_what_the_server_sends_arrives_as_sent(pipes: Pipes, msg: Any) -> None:
    server, worker = pipes
    server.send(msg)
    assert worker.recv() == msg


@pytest.mark.parametrize("msg", FROM_WORKER, ids=lambda m: type(m).__name__)
def test_what_the_worker_sends_arrives_as_sent(pipes: Pipes, msg: Any) -> None:
    server, worker = pipes
    worker.send(msg)
    assert server.recv() == msg


def test_numbers_past_64_bits_cross_as_they_are(pipes: Pipes) -> None:
    server, worker = pipes
    request = Generate(1, GenerateRequest(prompt="x", format={"type": "integer", "maximum": 10**30, "minimum": -(10**25)}))
    server.send(request)
    assert worker.recv() == request
    event = Output(1, Delta(tool_calls=[_call("f", id=12345678901234567890123, ok=True, small=-(2**63))]))
    worker.send(event)
    assert server.recv() == event


class _Array:
    """Stands for a numpy / torch / mlx value: it has ``tolist``."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def tolist(self) -> Any:
        return self.value


def test_values_of_array_libraries_cross_as_python_values(pipes: Pipes) -> None:
    server, worker = pipes
    worker.send(Result(1, Embeddings(vectors=_Array([[0.5, 1.0]]))))
    assert server.recv() == Result(1, Embeddings(vectors=[[0.5, 1.0]]))


def test_a_value_that_cannot_cross_is_a_type_error(pipes: Pipes) -> None:
    _, worker = pipes
    with pytest.raises(TypeError, match="object values cannot cross to the server"):
        worker.send(Output(1, Delta(tool_calls=[_call("f", x=object())])))


# -- errors -----------------------------------------------------------------------------------


class PluginUnsupported(errors.Unsupported):
    """A backend's own subclass of a core error."""


class Teapot(errors.BadRequest):
    status = 418


@pytest.mark.parametrize(
    ("raised", "cls", "status", "message"),
    [
        (errors.BadRequest("bad"), errors.BadRequest, 400, "bad"),
        (
            errors.ContextOverflow("the input length exceeds the context length"),
            errors.ContextOverflow,
            400,
            "the input length exceeds the context length",
        ),
        (errors.ModelNotFound("m"), errors.ModelNotFound, 404, "model 'm' not found"),
        (errors.ServerBusy(), errors.ServerBusy, 503, "server busy, please try again.  maximum pending requests exceeded"),
        (PluginUnsupported('"m" does not support insert'), errors.Unsupported, 400, '"m" does not support insert'),
        (Teapot("short and stout"), errors.BadRequest, 418, "short and stout"),
        (ValueError("boom"), errors.EngineError, 500, "ValueError: boom"),
        (
            MemoryError(),
            errors.EngineError,
            500,
            "the engine ran out of memory: it needs more than its limit (VLLAMA_WORKER_MEMORY) or than the machine has",
        ),
    ],
)
def test_an_error_keeps_its_core_class_and_status_across_the_pipe(
    pipes: Pipes, raised: BaseException, cls: type[errors.VllamaError], status: int, message: str
) -> None:
    server, worker = pipes
    worker.send(Failed(1, _failure(raised)))
    received = server.recv()
    assert isinstance(received, Failed)
    err = _error(received.error)
    assert type(err) is cls and err.status == status and err.message == message == str(err)


# -- engines in a worker process ------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    path = tiny_model(tmp_path_factory.mktemp("worker") / "tiny.gguf")
    return ModelRef(name="echo:latest", format="gguf", path=str(path))


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


async def test_errors_raised_in_the_worker_keep_their_class(model: ModelRef) -> None:
    engine = await WorkerEngine.start(IsolatedEchoBackend, model, Hardware(), LoadSettings(num_ctx=2))
    try:
        with pytest.raises(errors.ContextOverflow, match="the input length exceeds the context length") as raised:
            await collect(engine.generate(GenerateRequest(prompt="one two three")))
        assert raised.value.status == 400
        with pytest.raises(errors.ContextOverflow):
            await engine.embed(EmbedRequest(inputs=["one two three"], truncate=False))
        assert (await engine.embed(EmbedRequest(inputs=["one two three"]))).prompt_tokens == 2
        *deltas, done = await collect(engine.generate(GenerateRequest(prompt="one two")))
        assert [d.text for d in deltas if isinstance(d, Delta)] == ["one ", "two"] and isinstance(done, Done)
        assert engine.alive
    finally:
        await engine.close()
    assert not engine.alive


async def test_a_worker_that_died_is_not_alive(model: ModelRef) -> None:
    settings = LoadSettings(engine={"echo_allow_crash": True})
    engine = await WorkerEngine.start(IsolatedEchoBackend, model, Hardware(), settings)
    try:
        assert engine.alive
        with pytest.raises(errors.EngineError, match=r"stopped unexpectedly \(exit code 17\)"):
            await collect(engine.generate(GenerateRequest(prompt="one #crash two")))
        assert not engine.alive
        with pytest.raises(errors.EngineError, match="is not running"):
            await collect(engine.generate(GenerateRequest(prompt="again")))
    finally:
        await engine.close()


class MortalEchoEngine(EchoEngine):
    """An engine whose library dies under it after ``lives`` requests."""

    def __init__(self, model: ModelRef, settings: LoadSettings, lives: int) -> None:
        super().__init__(model, settings)
        self.lives = lives

    @property
    def alive(self) -> bool:
        return self.lives > 0

    async def _stream(self, text: str, request: GenerateRequest | ChatRequest, tools: list[Any] | None) -> AsyncIterator[Event]:
        try:
            async for event in super()._stream(text, request, tools):
                yield event
        finally:
            self.lives -= 1


class MortalBackend(EchoBackend):
    name: ClassVar[str] = "mortal"

    @classmethod
    async def load(cls, model: ModelRef, hardware: Hardware, settings: LoadSettings) -> Engine:
        return MortalEchoEngine(model, settings, lives=1)


class IsolatedMortalBackend(MortalBackend):
    name: ClassVar[str] = "mortal-isolated"
    isolated: ClassVar[bool] = True


async def test_an_engine_in_a_worker_that_says_it_died_is_not_alive(model: ModelRef) -> None:
    engine = await WorkerEngine.start(IsolatedMortalBackend, model, Hardware(), LoadSettings())
    try:
        assert engine.alive
        await collect(engine.generate(GenerateRequest(prompt="last words")))
        assert not engine.alive, "the worker reports its engine's alive before the stream ends"
    finally:
        await engine.close()


def test_engines_are_alive_by_default(model: ModelRef) -> None:
    assert EchoEngine(model, LoadSettings()).alive is True
    assert Engine.alive.__doc__ and "scheduler" in Engine.alive.__doc__


# -- the scheduler ---------------------------------------------------------------------------------


def _scheduler(backend: type[Backend], **settings: object) -> Scheduler:
    pm = make_plugin_manager(load_entrypoints=False)
    return Scheduler(pm, Hardware(devices=(cpu_device(),)), {backend.name: backend}, Settings.from_env({}, **settings))


@pytest.mark.parametrize("backend", [MortalBackend, IsolatedMortalBackend], ids=["in process", "in a worker"])
async def test_the_scheduler_reloads_an_engine_that_is_not_alive(model: ModelRef, backend: type[MortalBackend]) -> None:
    scheduler = _scheduler(backend)
    try:
        async with scheduler.acquire(model) as lease:
            first = lease.engine
            assert lease.load_duration_ns > 0
            await collect(first.generate(GenerateRequest(prompt="hi")))
        assert not first.alive
        assert model.name not in scheduler.runners, "a dead engine is unloaded when its request ends"
        async with scheduler.acquire(model) as lease:
            assert lease.engine is not first and lease.engine.alive and lease.load_duration_ns > 0
    finally:
        await scheduler.shutdown()


async def test_the_scheduler_unloads_a_dead_engine_before_the_next_request(model: ModelRef) -> None:
    scheduler = _scheduler(MortalBackend)
    try:
        async with scheduler.acquire(model) as lease:
            first = lease.engine
        assert isinstance(first, MortalEchoEngine) and model.name in scheduler.runners
        first.lives = 0  # it dies while idle
        async with scheduler.acquire(model) as lease:
            assert lease.engine is not first and lease.load_duration_ns > 0
    finally:
        await scheduler.shutdown()
