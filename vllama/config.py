"""Server settings from ``VLLAMA_*`` variables, each also read under its ``OLLAMA_*`` name."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vllama.durations import env_keep_alive

DEFAULT_PORT = 11434
LOG_FORMATS = ("text", "json")
#: Where short names are pulled from first: by the machine, Ollama's registry, or vllama's library of Hub sources.
SHORT_NAME_SOURCES = ("auto", "registry", "library")

#: Settings that Ollama also has: their ``OLLAMA_*`` name is read when the ``VLLAMA_*`` one is unset.
OLLAMA_ALIASES = (
    "HOST",
    "MODELS",
    "KEEP_ALIVE",
    "NUM_PARALLEL",
    "MAX_LOADED_MODELS",
    "MAX_QUEUE",
    "ORIGINS",
    "CONTEXT_LENGTH",
    "DEBUG",
    "NOPRUNE",
)


def env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """``VLLAMA_<name>``, else ``OLLAMA_<name>`` where Ollama has that setting, else None."""
    environ = os.environ if environ is None else environ
    value = environ.get(f"VLLAMA_{name}") or None
    if value is None and name in OLLAMA_ALIASES:
        value = environ.get(f"OLLAMA_{name}") or None
    return value


def parse_host(value: str | None) -> tuple[str, int]:
    """Parse OLLAMA_HOST's forms: ``host``, ``host:port``, ``:port``, ``http://host[:port]``."""
    if not value:
        return "127.0.0.1", DEFAULT_PORT
    default_port = DEFAULT_PORT
    if "://" in value:
        scheme = value.split("://", 1)[0]
        default_port = {"http": 80, "https": 443}.get(scheme, DEFAULT_PORT)
    else:
        value = "http://" + value
    parts = urlsplit(value)
    host = parts.hostname or "127.0.0.1"
    return host, parts.port or default_port


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the server is configured with. Build one with :meth:`from_env`."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    models_dir: Path = dataclasses.field(default_factory=lambda: Path.home() / ".vllama" / "models")
    keep_alive: float = 300.0
    #: Parallel sequences per model; None lets each backend choose for the hardware.
    num_parallel: int | None = None
    #: Per-model parallelism overrides (``VLLAMA_NUM_PARALLEL_MODELS=name=4,other=1``).
    num_parallel_per_model: Mapping[str, int] = dataclasses.field(default_factory=dict)
    max_loaded_models: int = 3
    max_queue: int = 512
    origins: tuple[str, ...] = ()
    #: The default ``num_ctx``; None sizes it by the accelerator's memory (:mod:`vllama.context`).
    context_length: int | None = None
    #: Force one backend by name for every model (``VLLAMA_BACKEND``).
    backend: str | None = None
    #: Entry-point names allowed to load; None loads all (``VLLAMA_PLUGINS``).
    plugins: tuple[str, ...] | None = None
    #: Extra plugin modules registered by import path (``VLLAMA_PLUGIN_MODULES``).
    plugin_modules: tuple[str, ...] = ()
    #: Run each loaded model's engine in its own worker process.
    isolate_engines: bool = True
    #: Models loaded at start and kept loaded (``VLLAMA_PRELOAD``, ``vllama serve --model``).
    preload: tuple[str, ...] = ()
    #: Engine settings for every model, under its own PARAMETER values; a backend gets only
    #: those it declares (``vllama serve --gpu-memory-utilization`` and the like).
    engine_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: Log at DEBUG level (``VLLAMA_DEBUG``).
    debug: bool = False
    #: ``text`` or ``json`` (one object per line) (``VLLAMA_LOG_FORMAT``, ``vllama serve --log-format``).
    log_format: str = "text"
    #: Log one line per HTTP request (``VLLAMA_ACCESS_LOG``, ``vllama serve --no-access-log``).
    access_log: bool = True
    #: Private memory each engine worker may hold, in bytes (``VLLAMA_WORKER_MEMORY``, e.g.
    #: ``8GiB``; 0 or ``off``: no limit); None: the machine's physical memory.
    worker_memory: int | None = None
    #: Keys that may call every route (``VLLAMA_API_KEY``, comma-separated); none leaves the server open.
    api_keys: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    #: Keys that may only run inference and read model information (``VLLAMA_API_KEY_READONLY``).
    read_only_api_keys: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    #: Server directories ``/api/create`` may read model files from (``VLLAMA_CREATE_DIRS``,
    #: ``os.pathsep``-separated); none: create takes only uploaded blobs.
    create_dirs: tuple[Path, ...] = ()
    #: Keep blobs no model uses at start instead of removing them (``VLLAMA_NOPRUNE``).
    noprune: bool = False
    #: The URL that ``registry.ollama.ai`` names are pulled from (``VLLAMA_REGISTRY``): Ollama's
    #: registry, or a mirror that speaks its protocol.
    registry: str = "https://registry.ollama.ai"
    #: Where a short name (``llama3.2``) is pulled from first (``VLLAMA_SHORT_NAMES``): ``auto`` (the
    #: library where it has the name in a format this machine runs better than GGUF, else the
    #: registry), ``registry`` (Ollama's, falling back to vllama's library) or ``library``.
    short_names: str = "auto"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, /, **overrides: object) -> Settings:
        """Read the environment; keyword overrides (e.g. from CLI flags) win."""
        e = environ if environ is not None else os.environ
        values: dict[str, object] = {}
        host, port = parse_host(env("HOST", e))
        values.update(host=host, port=port)
        if (models := env("MODELS", e)) is not None:
            values["models_dir"] = Path(models).expanduser()
        if (keep := env("KEEP_ALIVE", e)) is not None:
            values["keep_alive"] = env_keep_alive(keep)
        for name, key in (
            ("NUM_PARALLEL", "num_parallel"),
            ("MAX_LOADED_MODELS", "max_loaded_models"),
            ("MAX_QUEUE", "max_queue"),
            ("CONTEXT_LENGTH", "context_length"),
        ):
            if (raw := env(name, e)) is not None:
                number = _int(name, raw)
                if number > 0:
                    values[key] = number
        if (raw := env("NUM_PARALLEL_MODELS", e)) is not None:
            values["num_parallel_per_model"] = _pairs("NUM_PARALLEL_MODELS", raw)
        if (raw := env("ORIGINS", e)) is not None:
            values["origins"] = _csv(raw)
        if (raw := env("BACKEND", e)) is not None:
            values["backend"] = raw
        if (raw := env("PLUGINS", e)) is not None:
            values["plugins"] = _csv(raw)
        if (raw := env("PLUGIN_MODULES", e)) is not None:
            values["plugin_modules"] = _csv(raw)
        if (raw := env("ISOLATE_ENGINES", e)) is not None:
            values["isolate_engines"] = _bool(raw)
        if (raw := env("PRELOAD", e)) is not None:
            values["preload"] = _csv(raw)
        if (raw := env("DEBUG", e)) is not None:
            values["debug"] = _bool(raw)
        if (raw := env("LOG_FORMAT", e)) is not None:
            if raw.lower() not in LOG_FORMATS:
                raise ValueError(f"VLLAMA_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {raw!r}")
            values["log_format"] = raw.lower()
        if (raw := env("ACCESS_LOG", e)) is not None:
            values["access_log"] = _bool(raw)
        if (raw := env("WORKER_MEMORY", e)) is not None:
            values["worker_memory"] = parse_size("VLLAMA_WORKER_MEMORY", raw)
        if (raw := env("API_KEY", e)) is not None:
            values["api_keys"] = _csv(raw)
        if (raw := env("API_KEY_READONLY", e)) is not None:
            values["read_only_api_keys"] = _csv(raw)
        if (raw := env("CREATE_DIRS", e)) is not None:
            values["create_dirs"] = tuple(Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip())
        if (raw := env("NOPRUNE", e)) is not None:
            values["noprune"] = _bool(raw)
        if (raw := env("REGISTRY", e)) is not None:
            if not raw.startswith(("http://", "https://")):
                raise ValueError(f"VLLAMA_REGISTRY must be an http:// or https:// URL, got {raw!r}")
            values["registry"] = raw.rstrip("/")
        if (raw := env("SHORT_NAMES", e)) is not None:
            if raw.lower() not in SHORT_NAME_SOURCES:
                raise ValueError(f"VLLAMA_SHORT_NAMES must be one of {', '.join(SHORT_NAME_SOURCES)}, got {raw!r}")
            values["short_names"] = raw.lower()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def loopback(self) -> bool:
        """Is the server bound to this machine only?"""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"VLLAMA_{name} (or OLLAMA_{name}) must be an integer, got {raw!r}") from None


_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gib": 2**30,
    "t": 10**12,
    "tb": 10**12,
    "tib": 2**40,
}


def parse_size(name: str, raw: str) -> int:
    """Bytes from ``8GiB``, ``512MB``, ``1000000`` (0 or ``off``: 0)."""
    text = raw.strip().lower().replace(" ", "")
    if text in ("off", "none", "0"):
        return 0
    number = text.rstrip("kmgtib")
    unit = text[len(number) :]
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        raise ValueError(f"{name} must be a size such as 8GiB, 512MB or a number of bytes, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return int(value)


def _bool(raw: str) -> bool:
    return raw.lower() not in ("0", "false", "no", "off")


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _pairs(name: str, raw: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in _csv(raw):
        model, sep, number = item.rpartition("=")
        if not sep or not model:
            raise ValueError(f"VLLAMA_{name} entries look like name=N, got {item!r}")
        count = _int(name, number)
        if count < 1:
            raise ValueError(f"VLLAMA_{name}: {model.strip()} needs at least 1 parallel request, got {count}")
        out[model.strip().lower()] = count
    return out
