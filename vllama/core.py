"""The vllama core object: settings, plugins, hardware, backends, the model store and the
scheduler, wired once. The server is a thin layer over it; apps may use it directly."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from typing import Any

import pluggy

from vllama import hardware as hw
from vllama.config import Settings
from vllama.engine import Backend
from vllama.errors import BadRequest, InvalidName, ModelNotFound, NoBackend
from vllama.names import ModelName, parse_name
from vllama.plugins import make_plugin_manager
from vllama.scheduler import Scheduler
from vllama.selection import Candidate, choose, registered_backends
from vllama.store import ModelStore
from vllama.types import ModelRef

log = logging.getLogger("vllama")


class Vllama:
    """Everything a server needs, built from settings (``Settings.from_env()`` by default)."""

    def __init__(self, settings: Settings | None = None, *, pm: pluggy.PluginManager | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.pm = pm or make_plugin_manager(allow=self.settings.plugins, modules=self.settings.plugin_modules)
        self.hardware = hw.probe(self.pm)
        self.backends: dict[str, type[Backend]] = registered_backends(self.pm)
        self.store = ModelStore(self.settings.models_dir)
        self.store.sweep(prune=not self.settings.noprune)
        self.scheduler = Scheduler(self.pm, self.hardware, self.backends, self.settings)

    @property
    def engine_settings(self) -> frozenset[str]:
        """Engine setting names any installed backend accepts (valid Modelfile PARAMETERs)."""
        return frozenset().union(*(b.engine_settings for b in self.backends.values()))

    def check_engine_settings(self, options: Mapping[str, Any], model: ModelRef | None = None) -> None:
        """Check the engine settings in ``options`` with the backend that would serve
        ``model``; without a model (at create), a value is valid if a backend that declares
        the setting accepts it."""
        if model is not None:
            try:
                backends = [self.backend_for(model)]
            except NoBackend:
                return
        else:
            backends = list(self.backends.values())
        for key in sorted(k for k in options if k in self.engine_settings):
            takers = [b for b in backends if key in b.engine_settings]
            errors: list[BadRequest] = []
            for backend in takers:
                try:
                    backend.check_engine_settings({key: options[key]})
                except BadRequest as e:
                    errors.append(e)
            if takers and len(errors) == len(takers):
                raise errors[0]

    def candidate_for(self, model: ModelRef) -> Candidate:
        """The backend that would serve ``model`` here, with its answer (cheap: nothing
        loads); :class:`~vllama.errors.NoBackend` if none can."""
        return choose(self.pm, self.backends, model, self.hardware, self.settings.backend)

    def backend_for(self, model: ModelRef) -> type[Backend]:
        """The backend that would serve ``model`` here."""
        return self.candidate_for(model).backend

    def capabilities(self, model: ModelRef) -> list[str]:
        """What ``model`` can do on the backend that would serve it, for /api/show and /api/tags."""
        from vllama import admission

        try:
            serving: Candidate | None = self.candidate_for(model)
        except NoBackend:
            serving = None
        return admission.capabilities(model, serving)

    def parse(self, text: str) -> ModelName:
        return parse_name(text)

    def resolve(self, text: str) -> ModelRef:
        """Find an installed model by name; 404 ``model 'NAME' not found`` otherwise."""
        if not text:
            raise InvalidName("model is required")
        try:
            name = parse_name(text)
        except InvalidName:
            raise ModelNotFound(text) from None
        ref = self.pm.hook.resolve_model(name=name, store=self.store, hardware=self.hardware)
        if ref is None:
            raise ModelNotFound(text)
        return ref

    async def find(self, text: str) -> ModelRef:
        """:meth:`resolve` off the event loop: resolvers may read or install files."""
        return await asyncio.to_thread(self.resolve, text)

    async def preload(self) -> None:
        """Load the ``preload`` models one by one and keep them loaded; a model that fails
        is logged with its error and skipped."""
        for text in self.settings.preload:
            try:
                ref = await self.find(text)
                async with self.scheduler.acquire(ref, keep_alive=math.inf) as lease:
                    backend, load_ns = lease.runner.backend.name, lease.load_duration_ns
            except Exception as e:
                log.error("could not preload %s: %s", text, e)
                continue
            log.info("preloaded %s on %s in %.2fs; it stays loaded", ref.name, backend, load_ns / 1e9)

    async def close(self) -> None:
        await self.scheduler.shutdown()
