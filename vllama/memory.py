"""Memory: how much a model needs for a context, whether it fits, and the bound on each
worker process.

The estimate is the weights plus the KV cache that ``num_ctx`` tokens in each of ``parallel``
sequences take. For GGUF, the weights are the file and the cache is llama.cpp's default f16,
shaped by the GGUF metadata. For a safetensors (or MLX) directory, the weights are the tensors
its safetensors headers list, in the engine's compute type (the ``dtype`` engine setting, else
as stored), and the cache is shaped by config.json in that type. It counts what the engine must
hold for full contexts and nothing else (not the runtime, nor caches the engine may evict), so
that it never refuses a load that would fit; a load it says cannot fit is refused before it
starts rather than left to the out-of-memory killer.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllama.cgroups import cgroup_memory
from vllama.errors import BadRequest
from vllama.probes import meminfo_bytes
from vllama.types import Hardware, LoadSettings, ModelRef

if TYPE_CHECKING:
    from vllama.engine import Backend

#: Bytes per KV cache element (llama.cpp's default f16 cache).
_KV_BYTES = 2
#: Bytes per element of the floating-point safetensors dtypes (those a ``dtype`` cast changes).
_FLOAT_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}
#: Bytes per element of the ``dtype`` engine setting's values (vLLM's names, which MLX takes too).
_DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2}
#: Kinds of layer (config.json ``layer_types``) whose cache grows with every token.
_FULL_ATTENTION = frozenset({"full_attention", "attention", "global_attention"})
#: The largest safetensors header read (the format's own limit is 100 MB).
_MAX_HEADER = 100_000_000


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


# -- safetensors and MLX directories ---------------------------------------------------------


def safetensors_bytes(directory: str | Path) -> dict[str, int]:
    """Bytes of the tensors in a directory's ``*.safetensors`` files, by dtype (``BF16``,
    ``U32``...), read from their headers. OSError or ValueError when a file is not safetensors."""
    out: dict[str, int] = {}
    for path in sorted(Path(directory).glob("*.safetensors")):
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) != 8 or (n := struct.unpack("<Q", raw)[0]) > _MAX_HEADER:
                raise ValueError(f"{path.name}: invalid safetensors header")
            header = json.loads(f.read(n))
        for name, tensor in header.items():
            if name != "__metadata__":
                start, end = tensor["data_offsets"]
                out[str(tensor["dtype"])] = out.get(str(tensor["dtype"]), 0) + int(end) - int(start)
    return out


def compute_itemsize(by_dtype: Mapping[str, int], dtype: str = "auto") -> int:
    """Bytes per element of the activations and KV cache: those of ``dtype`` when it names a
    floating-point type, else of the floating-point type most of the weights are stored in (for
    a quantized model, that of its scales); 2 when no weight is floating point."""
    if dtype in _DTYPE_BYTES:
        return _DTYPE_BYTES[dtype]
    floats = {k: v for k, v in by_dtype.items() if k in _FLOAT_BYTES}
    return _FLOAT_BYTES[max(floats, key=lambda k: floats[k])] if floats else 2


def weights_bytes(by_dtype: Mapping[str, int], dtype: str = "auto") -> int:
    """The weights' bytes once loaded: floating-point tensors cast to ``dtype`` when it names a
    floating-point type, quantized and integer tensors as stored."""
    if dtype not in _DTYPE_BYTES:
        return sum(by_dtype.values())
    item = _DTYPE_BYTES[dtype]
    return sum(n * item // _FLOAT_BYTES[k] if k in _FLOAT_BYTES else n for k, n in by_dtype.items())


def hf_kv_cache_bytes(config: Mapping[str, Any], num_ctx: int, parallel: int, itemsize: int) -> int | None:
    """The KV cache of a Hugging Face config.json for ``parallel`` sequences of ``num_ctx``
    tokens, ``itemsize`` bytes per element; None when the config lacks the attention shape.

    Keys and values of ``num_key_value_heads`` (else ``num_attention_heads``) heads of
    ``head_dim`` (else ``hidden_size / num_attention_heads``) per layer; a latent of
    ``kv_lora_rank + qk_rope_head_dim`` per layer for multi-head latent attention. Layers that
    ``layer_types`` (or Gemma's ``sliding_window_pattern``) marks as sliding-window or chunked
    hold at most their window; other kinds (linear attention, state-space) hold no per-token
    cache.
    """
    text = config.get("text_config")
    text = text if isinstance(text, Mapping) else config
    try:
        layers = int(text["num_hidden_layers"])
        if text.get("kv_lora_rank"):
            per_token = int(text["kv_lora_rank"]) + int(text.get("qk_rope_head_dim") or 0)
        else:
            heads = int(text["num_attention_heads"])
            kv_heads = int(text.get("num_key_value_heads") or heads)
            head_dim = int(text.get("head_dim") or int(text["hidden_size"]) // heads)
            per_token = 2 * kv_heads * head_dim
        tokens = sum(_layer_tokens(text, layers, num_ctx))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return per_token * tokens * parallel * itemsize


def _layer_tokens(text: Mapping[str, Any], layers: int, num_ctx: int) -> list[int]:
    """Tokens each layer caches for a sequence of ``num_ctx`` tokens."""
    window = int(text.get("sliding_window") or 0) or num_ctx
    chunk = int(text.get("attention_chunk_size") or 0) or num_ctx
    kinds = text.get("layer_types")
    if isinstance(kinds, list) and len(kinds) == layers:
        capped = {"sliding_attention": min(window, num_ctx), "chunked_attention": min(chunk, num_ctx)}
        return [num_ctx if kind in _FULL_ATTENTION else capped.get(str(kind), 0) for kind in kinds]
    pattern = text.get("sliding_window_pattern")
    if isinstance(pattern, int) and pattern > 1:  # Gemma: every pattern-th layer is global
        return [num_ctx if i % pattern == pattern - 1 else min(window, num_ctx) for i in range(layers)]
    return [num_ctx] * layers


def directory_needed_bytes(path: str | Path, num_ctx: int, parallel: int, dtype: str = "auto") -> int | None:
    """Weights plus KV cache of a safetensors or MLX model directory; None when its
    config.json or safetensors headers cannot be read or lack the attention shape."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
        by_dtype = safetensors_bytes(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(config, dict) or not by_dtype:
        return None
    kv = hf_kv_cache_bytes(config, num_ctx, parallel, compute_itemsize(by_dtype, dtype))
    return None if kv is None else weights_bytes(by_dtype, dtype) + kv


def needed_bytes(model: ModelRef, settings: LoadSettings) -> int | None:
    """Weights plus KV cache for ``num_ctx`` x ``parallel`` tokens: a GGUF file's, or a
    safetensors or MLX directory's in the compute type the ``dtype`` engine setting names.
    None for formats (or files) the estimate does not cover."""
    if model.format == "gguf":
        kv = kv_cache_bytes(model.info, settings.num_ctx, settings.parallel)
        return None if kv is None else model.size + kv
    if model.format in ("safetensors", "mlx"):
        dtype = str(settings.engine.get("dtype", "auto"))
        return directory_needed_bytes(model.path, settings.num_ctx, settings.parallel, dtype)
    return None


def total_bytes() -> int:
    """Physical memory of the machine, or the memory limit of this process's cgroup (a
    container's, a systemd unit's) where that is lower."""
    physical = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    limit = cgroup_memory()
    return physical if limit is None else min(physical, limit.limit)


def system_available_bytes() -> int:
    """Memory the kernel says a new process can take now (``MemAvailable``), else the total;
    no more than the room left under this process's cgroup memory limit."""
    available = meminfo_bytes("MemAvailable")
    available = total_bytes() if available is None else available
    limit = cgroup_memory()
    return available if limit is None else min(available, limit.available)


def available_bytes(hardware: Hardware, reclaimable: int = 0) -> int:
    """System memory available now, plus what unloading idle models would return, plus
    accelerator memory (layers and cache may go there)."""
    accelerators = sum(d.memory_bytes for d in hardware.devices if d.kind != "cpu")
    return system_available_bytes() + reclaimable + accelerators


def estimate(model: ModelRef, settings: LoadSettings, hardware: Hardware, backend: type[Backend] | None = None) -> int | None:
    """Bytes of system memory a load takes: what ``backend`` says (``Backend.memory_needed``:
    an engine that reserves its own cache, or keeps its weights on a GPU, knows better), else
    :func:`needed_bytes`. None when it cannot say."""
    return needed_bytes(model, settings) if backend is None else backend.memory_needed(model, hardware, settings)


def check_fits(
    model: ModelRef, settings: LoadSettings, hardware: Hardware, reclaimable: int = 0, backend: type[Backend] | None = None
) -> None:
    """Raise :class:`InsufficientMemory` when the estimate (:func:`estimate`) exceeds what is available."""
    needed = estimate(model, settings, hardware, backend)
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
    else :func:`total_bytes`."""
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
