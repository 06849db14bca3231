"""Memory: how much a GGUF model needs for a context, whether it fits, and the bound on
each worker process.

The estimate is the weights (the file) plus an f16 KV cache for ``num_ctx`` tokens in each
of ``parallel`` sequences, from the GGUF metadata; a load that cannot fit is refused before
it starts rather than left to the out-of-memory killer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from vllama.errors import BadRequest
from vllama.probes import meminfo_bytes
from vllama.types import Hardware, LoadSettings, ModelRef

#: Bytes per KV cache element (llama.cpp's default f16 cache).
_KV_BYTES = 2


class InsufficientMemory(BadRequest):
    """The model and the KV cache its context asks for do not fit in memory."""


def _per_layer(value: Any, layers: int) -> int:
    """A metadata value that is one number or one per layer, summed over the layers."""
    if isinstance(value, list):
        return sum(int(v) for v in value)
    return int(value) * layers


def kv_cache_bytes(info: Mapping[str, Any], num_ctx: int, parallel: int) -> int | None:
    """An f16 KV cache for ``parallel`` sequences of ``num_ctx`` tokens; None when the
    metadata lacks the attention shape."""
    arch = info.get("general.architecture", "")
    layers, embd = info.get(f"{arch}.block_count"), info.get(f"{arch}.embedding_length")
    heads = info.get(f"{arch}.attention.head_count")
    if not isinstance(layers, int) or not isinstance(embd, int) or not heads:
        return None
    first_heads = heads[0] if isinstance(heads, list) else heads
    key = info.get(f"{arch}.attention.key_length") or embd // max(int(first_heads), 1)
    value = info.get(f"{arch}.attention.value_length") or key
    kv_heads = info.get(f"{arch}.attention.head_count_kv") or heads
    return _per_layer(kv_heads, layers) * (int(key) + int(value)) * num_ctx * parallel * _KV_BYTES


def needed_bytes(model: ModelRef, settings: LoadSettings) -> int | None:
    """Weights plus KV cache for a GGUF model; None for formats the estimate does not cover."""
    if model.format != "gguf":
        return None
    kv = kv_cache_bytes(model.info, settings.num_ctx, settings.parallel)
    return None if kv is None else model.size + kv


def total_bytes() -> int:
    """Physical memory of the machine."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def system_available_bytes() -> int:
    """Memory the kernel says a new process can take now (``MemAvailable``), else the total."""
    available = meminfo_bytes("MemAvailable")
    return total_bytes() if available is None else available


def available_bytes(hardware: Hardware, reclaimable: int = 0) -> int:
    """System memory available now, plus what unloading idle models would return, plus
    accelerator memory (layers and cache may go there)."""
    accelerators = sum(d.memory_bytes for d in hardware.devices if d.kind != "cpu")
    return system_available_bytes() + reclaimable + accelerators


def check_fits(model: ModelRef, settings: LoadSettings, hardware: Hardware, reclaimable: int = 0) -> None:
    """Raise :class:`InsufficientMemory` when the estimate exceeds what is available."""
    needed = needed_bytes(model, settings)
    if needed is None:
        return
    available = available_bytes(hardware, reclaimable)
    if needed > available:
        raise InsufficientMemory(
            f"model requires more system memory ({_gib(needed)}) than is available ({_gib(available)}) "
            f"for num_ctx {settings.num_ctx} with {settings.parallel} parallel; lower num_ctx or num_parallel"
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def worker_limit(setting: int | None) -> int | None:
    """Bytes of private memory a worker may hold: ``setting`` when given (0: no limit),
    else the machine's physical memory."""
    if setting is not None:
        return setting or None
    return total_bytes()


def limit_this_process(limit: int | None) -> None:
    """Cap this process's private writable memory (``RLIMIT_DATA``: heap and anonymous
    mappings, so a KV cache or a batch buffer, but not the file mappings of mmap-ed
    weights, nor the address space that GPU drivers reserve): an allocation past it fails
    in the engine, which reports it as a load or request error, instead of growing until
    the out-of-memory killer picks a process."""
    if limit is None:
        return
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
