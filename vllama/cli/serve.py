"""``vllama serve``: start the server."""

from __future__ import annotations

import logging

import click

from vllama.cli.main import cli


@cli.command()
@click.option("--host", help="Bind address, host[:port] (default VLLAMA_HOST or 127.0.0.1:11434).")
@click.option("--engine", "backend", help="Force one backend for every model (VLLAMA_BACKEND).")
@click.option("--parallel", type=int, help="Parallel requests per model (VLLAMA_NUM_PARALLEL).")
@click.option("--ctx-size", "context_length", type=int, help="Default context length (VLLAMA_CONTEXT_LENGTH).")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def serve(host: str | None, backend: str | None, parallel: int | None, context_length: int | None, log_level: str) -> None:
    """Start the vllama server (Ollama's API on /api, OpenAI's on /v1)."""
    import uvicorn

    from vllama.config import Settings, parse_host
    from vllama.core import Vllama
    from vllama.server.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, object] = {"backend": backend, "num_parallel": parallel, "context_length": context_length}
    if host:
        overrides["host"], overrides["port"] = parse_host(host)
    settings = Settings.from_env(**overrides)
    vllama = Vllama(settings)
    log = logging.getLogger("vllama")
    for device in vllama.hardware.devices:
        log.info("found %s: %s (%d MiB)", device.kind, device.name, device.memory_bytes >> 20)
    log.info("backends: %s", ", ".join(sorted(vllama.backends)) or "none installed")
    log.info("models in %s; listening on %s", settings.models_dir, settings.url)
    uvicorn.run(create_app(vllama), host=settings.host, port=settings.port, log_level=log_level, lifespan="on")
