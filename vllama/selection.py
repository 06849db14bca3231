"""Backend registration and choice: the façade over ``register_backends`` and ``select_backend``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pluggy

from vllama.engine import Backend, Support
from vllama.errors import NoBackend, PluginError
from vllama.hookspecs import hookimpl
from vllama.types import Hardware, ModelRef


@dataclass(frozen=True)
class Candidate:
    """A backend that accepted a model, with its answer."""

    backend: type[Backend]
    support: Support

    @property
    def capabilities(self) -> frozenset[str]:
        """What the backend can do with this model."""
        narrowed = self.support.capabilities
        return self.backend.capabilities if narrowed is None else self.backend.capabilities & narrowed


def registered_backends(pm: pluggy.PluginManager) -> dict[str, type[Backend]]:
    """Collect every registered Backend class by name; a duplicate name is a PluginError."""
    found: dict[str, type[Backend]] = {}

    def register(cls: type[Backend]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            raise PluginError(f"register_backends: {cls!r} is not a Backend subclass")
        if cls.name in found and found[cls.name] is not cls:
            raise PluginError(f"two backends are named {cls.name!r}: {found[cls.name]!r} and {cls!r}")
        found[cls.name] = cls

    pm.hook.register_backends(register=register)
    return found


def choose(
    pm: pluggy.PluginManager,
    backends: dict[str, type[Backend]],
    model: ModelRef,
    hardware: Hardware,
    forced: str | None = None,
) -> Candidate:
    """Pick the backend for ``model``: the model's ``backend`` parameter or ``forced``
    (VLLAMA_BACKEND) narrows the choice; the ``select_backend`` hook decides."""
    wanted = model.parameters.get("backend") or forced
    if wanted is not None and wanted not in backends:
        installed = ", ".join(sorted(backends)) or "none"
        raise NoBackend(f"backend {wanted!r} is not installed (installed: {installed})")
    pool = [backends[wanted]] if wanted else list(backends.values())
    candidates = []
    for cls in pool:
        support = cls.supports(model, hardware)
        if support is not None and model.format in cls.formats:
            candidates.append(Candidate(cls, support))
    if not candidates:
        raise NoBackend(_no_backend_message(model, backends, wanted))
    chosen = pm.hook.select_backend(model=model, hardware=hardware, candidates=candidates)
    if chosen is None:
        raise NoBackend(f"no backend was selected for {model.name}")
    return chosen


def _no_backend_message(model: ModelRef, backends: dict[str, type[Backend]], wanted: str | None) -> str:
    if wanted:
        return f"backend {wanted!r} cannot run {model.name} ({model.format}) on this machine"
    for_format = sorted(name for name, cls in backends.items() if model.format in cls.formats)
    if not for_format:
        return f"no installed backend runs {model.format} models{install_hint(model.format)}"
    return f"no installed backend can run {model.name} on this machine (tried: {', '.join(for_format)})"


#: The backend packages that run each format, by the directory they install from in a checkout
#: (they are not on PyPI: the name vllama there belongs to another project).
_BACKEND_PACKAGES = {
    "gguf": "the llama.cpp backend (pip install ./plugins/vllama-llamacpp)",
    "safetensors": "the vLLM or MLX backend (pip install ./plugins/vllama-vllm or ./plugins/vllama-mlx)",
    "mlx": "the MLX backend (pip install ./plugins/vllama-mlx)",
}


def install_hint(fmt: str) -> str:
    """What to install for a format no installed backend runs, as the end of an error message
    (empty for a format no backend of this project runs)."""
    package = _BACKEND_PACKAGES.get(fmt)
    return f"; install {package} from a vllama checkout (docs/install.md)" if package else ""


@hookimpl(trylast=True)
def select_backend(candidates: Sequence[Candidate]) -> Candidate | None:
    """The default policy: the highest score wins; ties go to the first registered."""
    return max(candidates, key=lambda c: c.support.score, default=None)
