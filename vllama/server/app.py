"""The Litestar app: a factory for a ready server, and a plugin to mount vllama in yours."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Router
from litestar.config.app import AppConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.plugins import InitPlugin

from vllama import __version__
from vllama.core import Vllama
from vllama.server import (
    anthropic_routes,
    health,
    lenient,
    metrics,
    ollama_generate,
    ollama_models,
    openai_routes,
    rerank_routes,
    responses_routes,
)
from vllama.server.auth import ApiKeyGuard, Keys
from vllama.server.cors import OriginGuard
from vllama.server.errors import HANDLERS


class VllamaPlugin(InitPlugin):
    """Mount vllama's routes, error handling and lifespan into a Litestar app.

    ``Litestar(plugins=[VllamaPlugin(Vllama())])`` serves Ollama's, OpenAI's and Anthropic's APIs next to
    your own routes; the engines shut down with the app.
    """

    def __init__(self, vllama: Vllama) -> None:
        self.vllama = vllama

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        routes: list[Any] = [
            *ollama_models.ROUTES,
            *ollama_generate.ROUTES,
            *openai_routes.ROUTES,
            *anthropic_routes.ROUTES,
            *rerank_routes.ROUTES,
            *health.ROUTES,
            *responses_routes.ROUTES,
            *metrics.ROUTES,
        ]
        self.vllama.pm.hook.register_routes(register=routes.append)
        app_config.route_handlers.append(Router("/", route_handlers=routes, before_request=lenient.warn_unknown_fields))
        app_config.exception_handlers = {**HANDLERS, **app_config.exception_handlers}
        app_config.state["vllama"] = self.vllama
        app_config.lifespan.append(self._lifespan)
        settings = self.vllama.settings
        keys = Keys.of(settings.api_keys, settings.read_only_api_keys)
        app_config.middleware.insert(0, DefineMiddleware(ApiKeyGuard, keys=keys))
        app_config.middleware.insert(0, DefineMiddleware(OriginGuard, origins=settings.origins, check_host=settings.loopback))
        app_config.middleware.insert(0, DefineMiddleware(metrics.RequestMetrics, metrics=metrics.metrics_for(self.vllama)))
        return app_config

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncIterator[None]:
        preload = asyncio.create_task(self.vllama.preload())
        try:
            yield
        finally:
            preload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await preload
            await self.vllama.close()


def create_app(vllama: Vllama | None = None, **litestar_options: Any) -> Litestar:
    """A ready vllama server app (``Vllama()`` from the environment by default).

    It leaves logging as it is (``vllama serve`` sets it up with :mod:`vllama.logs`), unless
    ``logging_config`` is given.
    """
    litestar_options.setdefault("logging_config", None)
    return Litestar(
        plugins=[VllamaPlugin(vllama or Vllama())],
        openapi_config=OpenAPIConfig(title="vllama", version=__version__, path="/openapi"),
        **litestar_options,
    )
