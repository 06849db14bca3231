"""``vllama serve``: start the server."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import click

from vllama.cli.main import cli

if TYPE_CHECKING:
    from litestar import Litestar

#: Engine-specific flags: (option name, engine setting, type, metavar, help).
ENGINE_FLAGS: tuple[tuple[str, str, click.ParamType, str, str], ...] = (
    (
        "--gpu-memory-utilization",
        "gpu_memory_utilization",
        click.FloatRange(0, 1, min_open=True),
        "FRACTION",
        "Share of GPU memory an engine may use, above 0 and at most 1.",
    ),
    ("--max-num-seqs", "max_num_seqs", click.IntRange(min=1), "N", "Sequences an engine batches at once."),
    ("--max-num-batched-tokens", "max_num_batched_tokens", click.IntRange(min=1), "N", "Tokens an engine processes per step."),
    ("--tensor-parallel-size", "tensor_parallel_size", click.IntRange(min=1), "N", "GPUs each model is split across."),
    (
        "--prefix-cache-mb",
        "prefix_cache_mb",
        click.IntRange(min=0),
        "MIB",
        "Host memory for prompt states kept between requests (0: none).",
    ),
    (
        "--draft-tokens",
        "draft_tokens",
        click.IntRange(0, 64),
        "N",
        "Tokens a greedy reply guesses from its prompt per step, checked in the same batch (0: off).",
    ),
)


def _engine_options(f: Any) -> Any:
    for flag, setting, kind, metavar, text in reversed(ENGINE_FLAGS):
        f = click.option(
            flag, setting, type=kind, metavar=metavar, help=f"{text} Engine setting {setting}, for the backends that take it."
        )(f)
    return f


@cli.command()
@click.option("--host", metavar="HOST[:PORT]", help="Bind address, host[:port] (default VLLAMA_HOST or 127.0.0.1:11434).")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME",
    help="Load this model at start and keep it loaded; repeat for more (VLLAMA_PRELOAD).",
)
@click.option("--engine", "backend", metavar="NAME", help="Force one backend for every model (VLLAMA_BACKEND).")
@click.option("--parallel", type=click.IntRange(min=1), metavar="N", help="Parallel requests per model (VLLAMA_NUM_PARALLEL).")
@click.option(
    "--ctx-size", "context_length", type=click.IntRange(min=1), metavar="N", help="Default context length (VLLAMA_CONTEXT_LENGTH)."
)
@_engine_options
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Log level (default info, or debug with VLLAMA_DEBUG)."
)
@click.option("--log-format", type=click.Choice(["text", "json"]), help="text (default) or json: one object per line (VLLAMA_LOG_FORMAT).")
@click.option("--no-access-log", is_flag=True, help="Do not log a line per request (VLLAMA_ACCESS_LOG=0).")
def serve(
    host: str | None,
    models: tuple[str, ...],
    backend: str | None,
    parallel: int | None,
    context_length: int | None,
    log_level: str | None,
    log_format: str | None,
    no_access_log: bool,
    **engine: Any,
) -> None:
    """Start the vllama server (Ollama's API on /api, OpenAI's on /v1)."""
    import uvicorn

    from vllama import logs
    from vllama.cli.progress import PreloadSpinner, animated
    from vllama.config import Settings, parse_host
    from vllama.core import Vllama
    from vllama.server.deferred import DeferredApp

    overrides: dict[str, object] = {
        "backend": backend,
        "num_parallel": parallel,
        "context_length": context_length,
        "log_format": log_format,
        "access_log": False if no_access_log else None,
    }
    if host:
        overrides["host"], overrides["port"] = parse_host(host)
    if models:
        overrides["preload"] = models
    overrides["engine_defaults"] = {k: v for k, v in engine.items() if v is not None}
    settings = Settings.from_env(**overrides)
    handler = logs.configure(level=log_level or ("debug" if settings.debug else "info"), json_lines=settings.log_format == "json")
    vllama = Vllama(settings)
    log = logging.getLogger("vllama")
    for device in vllama.hardware.devices:
        log.info("found %s: %s (%d MiB)", device.kind, device.name, device.memory_bytes >> 20)
    log.info("backends: %s", ", ".join(sorted(vllama.backends)) or "none installed")
    for setting, value in settings.engine_defaults.items():
        takers = sorted(name for name, b in vllama.backends.items() if setting in b.engine_settings)
        if takers:
            log.info("engine setting %s=%s for %s", setting, value, ", ".join(takers))
        else:
            log.warning("no installed backend takes the engine setting %s; it is ignored", setting)
    if settings.preload:
        log.info("preloading %s (in the background; each stays loaded)", ", ".join(settings.preload))
    log.info("models in %s; listening on %s", settings.models_dir, settings.url)
    spinner = None
    if settings.preload and animated() and log.isEnabledFor(logging.INFO) and isinstance(handler, logging.StreamHandler):
        spinner = PreloadSpinner(list(settings.preload), handler)  # it stops at the last "preloaded" line
    if settings.api_keys or settings.read_only_api_keys:
        log.info("API keys required: %d full, %d read-only", len(settings.api_keys), len(settings.read_only_api_keys))
    elif not settings.loopback:
        log.warning("bound to %s with no API key: anyone who can reach this port can use every route; set VLLAMA_API_KEY", settings.host)

    def build() -> Litestar:
        from vllama.server.app import create_app

        return create_app(vllama)

    app = logs.RequestLog(DeferredApp(build), access_log=settings.access_log)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False, lifespan="on")
    finally:
        if spinner is not None:
            spinner.stop()
