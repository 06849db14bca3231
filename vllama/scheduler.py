"""The scheduler: which models are loaded, who may run on them, and when they go.

Ollama's semantics: models load on demand; ``keep_alive`` (per request, else the default)
says how long an idle model stays (0 unloads at once, negative keeps it forever); at most
``max_loaded_models`` stay loaded, the least recently used idle one leaving first; each
model runs ``parallel`` requests at once and the rest wait, up to ``max_queue`` waiting
requests in all, past which requests get a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import msgspec
import pluggy

from vllama import context, logs, memory
from vllama import options as opts
from vllama.config import Settings
from vllama.engine import Backend, Engine
from vllama.errors import ServerBusy, VllamaError
from vllama.selection import choose
from vllama.types import Hardware, LoadSettings, ModelRef
from vllama.worker import WorkerEngine

log = logging.getLogger("vllama.scheduler")


@dataclass(eq=False)
class Runner:
    """One loaded (or loading) model."""

    model: ModelRef
    backend: type[Backend]
    settings: LoadSettings
    keep_alive: float
    slots: asyncio.Semaphore
    engine: Engine | None = None
    loading: asyncio.Task[Engine] | None = None
    active: int = 0
    waiting: int = 0
    last_used: float = field(default_factory=time.monotonic)
    expires_at: float = math.inf
    load_duration_ns: int = 0
    draining: bool = False
    #: The settings requests ask for, where ``settings`` had to lower an automatic context
    #: to fit; requests that ask for these still match this runner.
    requested: LoadSettings | None = None
    _timer: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def ready(self) -> bool:
        return self.engine is not None

    @property
    def alive(self) -> bool:
        """Loaded, and its engine can still serve (:attr:`Engine.alive`)."""
        return self.engine is not None and self.engine.alive


@dataclass(frozen=True)
class LoadFailure:
    """A model's last load that failed, kept for readiness checks until a load succeeds."""

    model: ModelRef
    backend: str
    error: str
    #: When it failed (seconds since the epoch).
    at: float


#: Failed loads remembered at most (the oldest is forgotten first), so that requests for many
#: models that cannot load hold no unbounded memory.
MAX_FAILURES = 64


@dataclass
class Lease:
    """What a request holds while it runs: the engine, and how long loading took."""

    engine: Engine
    runner: Runner
    load_duration_ns: int


class Scheduler:
    """Loads, shares and unloads engines; see the module docstring for the rules."""

    def __init__(self, pm: pluggy.PluginManager, hardware: Hardware, backends: dict[str, type[Backend]], settings: Settings) -> None:
        self.pm = pm
        self.hardware = hardware
        self.backends = backends
        self.settings = settings
        self.runners: dict[str, Runner] = {}
        self.pending = 0
        #: Called with each runner once its engine has loaded (metrics listen here).
        self.on_loaded: list[Callable[[Runner], None]] = []
        #: Each model's last failed load, until a load succeeds or the model is deleted.
        self.failures: dict[str, LoadFailure] = {}
        #: ``num_ctx`` where neither a request, a model nor the server sets it.
        self.default_num_ctx = context.default_num_ctx(hardware)
        if settings.context_length is None:
            log.info(
                "default context length %d, for %.0f GiB of accelerator memory",
                self.default_num_ctx,
                context.accelerator_bytes(hardware) / context.GIB,
            )
        self._changed = asyncio.Condition()

    # -- the request path -------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def acquire(
        self, model: ModelRef, *, keep_alive: float | None = None, options: opts.RequestOptions | None = None
    ) -> AsyncIterator[Lease]:
        """Hold a slot on the model's engine for one request, loading it if needed. ``options``
        are the request's, merged over the model's (:func:`vllama.options.merge`); without
        them, the model's own."""
        logs.note_model(model.name)
        if self.pending >= self.settings.max_queue:
            raise ServerBusy()
        self.pending += 1
        queued = True
        runner: Runner | None = None
        try:
            load = (options or opts.merge(self.settings.engine_defaults, model.parameters)).load
            runner, load_ns = await self._runner_for(model, load)
            runner.waiting += 1
            try:
                await runner.slots.acquire()
            finally:
                runner.waiting -= 1
            self.pending -= 1
            queued = False
            runner.active += 1
            runner.last_used = time.monotonic()
            self._cancel_timer(runner)
            if keep_alive is not None:
                runner.keep_alive = keep_alive
            try:
                assert runner.engine is not None
                yield Lease(runner.engine, runner, load_ns)
            finally:
                runner.active -= 1
                runner.slots.release()
                runner.last_used = time.monotonic()
                await self._idle_check(runner)
        finally:
            if queued:
                self.pending -= 1

    async def _runner_for(self, model: ModelRef, load: opts.LoadOptions) -> tuple[Runner, int]:
        while True:
            runner = self.runners.get(model.name)
            if runner is not None and runner.ready and not runner.alive:
                await self.unload(runner)
                continue
            if runner is not None and (runner.draining or self._needs_reload(runner, model, load)):
                runner.draining = True
                await self._wait_gone(runner)
                continue
            if runner is None:  # a refusal here (the load would not fit) is the request's, not the model's
                runner = await self._new_runner(model, load)
            if runner.loading is not None:
                loading = runner.loading
                try:
                    await asyncio.shield(loading)
                except Exception as e:
                    if self.runners.get(model.name) is runner:
                        del self.runners[model.name]
                        self._failed(model, runner.backend, e)
                        await self._notify()
                    raise
                return runner, runner.load_duration_ns
            return runner, 0

    def _failed(self, model: ModelRef, backend: type[Backend], error: Exception) -> None:
        """Remember a failed load for readiness checks (:attr:`failures`)."""
        message = error.message if isinstance(error, VllamaError) else f"{type(error).__name__}: {error}"
        self.failures.pop(model.name, None)
        self.failures[model.name] = LoadFailure(model, backend.name, message, time.time())
        while len(self.failures) > MAX_FAILURES:
            del self.failures[next(iter(self.failures))]

    def forget(self, name: str) -> None:
        """Drop what is remembered of a model's failed load (it was deleted)."""
        self.failures.pop(name, None)

    def readiness(self, name: str) -> tuple[str, str]:
        """A model's state for load balancers and /api/ps, and the error when it failed:
        ``ready`` (loaded, its engine alive), ``loading``, ``failed`` (its last load, or its
        engine, failed) or ``unloaded``."""
        runner = self.runners.get(name)
        if runner is not None:
            if runner.loading is not None:
                return "loading", ""
            if runner.alive:
                return "ready", ""
            return "failed", f"the engine for {name} stopped; it will reload on the next request"
        failure = self.failures.get(name)
        if failure is not None:
            return "failed", failure.error
        return "unloaded", ""

    def _needs_reload(self, runner: Runner, model: ModelRef, load: opts.LoadOptions) -> bool:
        if runner.model.digest != model.digest:
            return True
        return self._load_settings(model, load, runner.backend, runner.settings.parallel) != (runner.requested or runner.settings)

    def _load_settings(
        self, model: ModelRef, load: opts.LoadOptions, backend: type[Backend], parallel: int, *, loading: bool = False
    ) -> LoadSettings:
        trained = model.info.get(f"{model.info.get('general.architecture', '')}.context_length")
        settings = load.settings(num_ctx=self.settings.context_length or self.default_num_ctx, parallel=parallel)
        if isinstance(trained, int) and trained > 0 and settings.num_ctx > trained:
            if loading:  # as Ollama: capped with a warning when asked for, a note for the server default
                asked = load.num_ctx is not None
                log.log(
                    logging.WARNING if asked else logging.INFO,
                    "requested context size too large for %s: num_ctx %d, using the trained %d",
                    model.name,
                    settings.num_ctx,
                    trained,
                )
            settings.num_ctx = trained
        settings.num_batch = min(settings.num_batch, settings.num_ctx)  # as Ollama: a batch past the context buys nothing
        settings.engine = {k: v for k, v in settings.engine.items() if k in backend.engine_settings}
        return settings

    def _parallel(self, model: ModelRef, default: int) -> int:
        per_model = self.settings.num_parallel_per_model
        for key in (model.name.lower(), model.name.lower().removesuffix(":latest")):
            if key in per_model:
                return per_model[key]
        if "num_parallel" in model.parameters:
            return int(model.parameters["num_parallel"])
        return self.settings.num_parallel or default

    async def _new_runner(self, model: ModelRef, load: opts.LoadOptions) -> Runner:
        candidate = choose(self.pm, self.backends, model, self.hardware, self.settings.backend)
        parallel = self._parallel(model, candidate.support.parallel)
        requested = self._load_settings(model, load, candidate.backend, parallel, loading=True)
        automatic = load.num_ctx is None and self.settings.context_length is None
        settings = self._fitted(model, requested, candidate.backend, automatic=automatic)
        await self._make_room()
        runner = Runner(
            model=model,
            backend=candidate.backend,
            settings=settings,
            keep_alive=self.settings.keep_alive,
            slots=asyncio.Semaphore(settings.parallel),
            requested=requested if settings != requested else None,
        )
        self.runners[model.name] = runner
        runner.loading = asyncio.create_task(self._load(runner))
        return runner

    def _fitted(self, model: ModelRef, settings: LoadSettings, backend: type[Backend], *, automatic: bool) -> LoadSettings:
        """``settings`` if the load fits in memory; with an automatic context that does not fit,
        the same with the context stepped down (:func:`vllama.context.smaller_num_ctx`), as
        Ollama does; else :class:`~vllama.memory.InsufficientMemory`."""
        idle = sum(r.engine.info().size for r in self.runners.values() if r.engine is not None and r.active == 0 and r.waiting == 0)
        fitted = settings
        while True:
            try:
                memory.check_fits(model, fitted, self.hardware, reclaimable=idle, backend=backend)
                return fitted
            except memory.InsufficientMemory:
                smaller = context.smaller_num_ctx(fitted.num_ctx) if automatic else None
                if smaller is None:
                    raise
                log.info("%s does not fit with num_ctx %d; trying %d", model.name, fitted.num_ctx, smaller)
                fitted = msgspec.structs.replace(fitted, num_ctx=smaller, num_batch=min(fitted.num_batch, smaller))

    async def _load(self, runner: Runner) -> Engine:
        start = time.perf_counter_ns()
        backend, model = runner.backend, runner.model
        log.info(
            "loading %s with %s (parallel %d, num_ctx %d)", model.name, backend.name, runner.settings.parallel, runner.settings.num_ctx
        )
        if backend.isolated and self.settings.isolate_engines:
            limit = memory.worker_limit(self.settings.worker_memory)
            engine: Engine = await WorkerEngine.start(backend, model, self.hardware, runner.settings, memory_limit=limit)
        else:
            engine = await backend.load(model, self.hardware, runner.settings)
        runner.engine = engine
        runner.load_duration_ns = time.perf_counter_ns() - start
        runner.loading = None
        self.failures.pop(model.name, None)
        log.info("loaded %s in %.2fs", model.name, runner.load_duration_ns / 1e9)
        for listener in self.on_loaded:
            listener(runner)
        return engine

    async def _make_room(self) -> None:
        """Unload least recently used idle models until one more fits."""
        while len(self.runners) >= self.settings.max_loaded_models:
            idle = [r for r in self.runners.values() if r.ready and r.active == 0 and r.waiting == 0]
            if idle:
                await self.unload(min(idle, key=lambda r: r.last_used))
                continue
            async with self._changed:
                await self._changed.wait()

    async def _wait_gone(self, runner: Runner) -> None:
        if runner.ready and runner.active == 0:
            await self.unload(runner)
            return
        async with self._changed:
            await self._changed.wait_for(lambda: self.runners.get(runner.name) is not runner)

    # -- lifetimes ------------------------------------------------------------------------

    async def _idle_check(self, runner: Runner) -> None:
        if not runner.alive or (runner.draining and runner.active == 0):
            await self.unload(runner)
            return
        if runner.active == 0:
            self._schedule_expiry(runner)
        await self._notify()

    def _schedule_expiry(self, runner: Runner) -> None:
        self._cancel_timer(runner)
        if runner.keep_alive == 0:
            runner.expires_at = time.time()
            asyncio.get_running_loop().create_task(self.unload(runner))
        elif math.isfinite(runner.keep_alive):
            runner.expires_at = time.time() + runner.keep_alive
            loop = asyncio.get_running_loop()
            runner._timer = loop.call_later(runner.keep_alive, lambda: loop.create_task(self._expire(runner)))
        else:
            runner.expires_at = math.inf

    def _cancel_timer(self, runner: Runner) -> None:
        if runner._timer is not None:
            runner._timer.cancel()
            runner._timer = None

    async def _expire(self, runner: Runner) -> None:
        if runner.active == 0 and runner.waiting == 0 and self.runners.get(runner.name) is runner:
            await self.unload(runner)

    async def unload(self, runner: Runner) -> None:
        """Take a model out and close its engine (a worker process exits)."""
        if self.runners.get(runner.name) is runner:
            del self.runners[runner.name]
        self._cancel_timer(runner)
        engine, runner.engine = runner.engine, None
        if engine is not None:
            log.info("unloading %s", runner.name)
            try:
                await engine.close()
            except Exception:
                log.exception("closing %s failed", runner.name)
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def load(self, model: ModelRef, *, keep_alive: float | None, options: opts.RequestOptions | None = None) -> int:
        """Load a model without running anything (an empty prompt); returns load ns."""
        async with self.acquire(model, keep_alive=keep_alive, options=options) as lease:
            return lease.load_duration_ns

    async def stop(self, name: str) -> bool:
        """Unload a model now, or as soon as its running requests finish (keep_alive 0)."""
        runner = self.runners.get(name)
        if runner is None:
            return False
        runner.keep_alive = 0
        if runner.active == 0 and runner.waiting == 0 and runner.ready:
            await self.unload(runner)
        return True

    async def shutdown(self) -> None:
        for runner in list(self.runners.values()):
            if runner.loading is not None:
                runner.loading.cancel()
                with contextlib.suppress(BaseException):
                    await runner.loading
            await self.unload(runner)
