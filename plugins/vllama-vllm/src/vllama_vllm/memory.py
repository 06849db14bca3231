"""Memory arithmetic: a model's weights and KV cache per token, the KV pool on CPU, the share
of each GPU an engine may claim, and a clear error when a model cannot fit."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vllama.errors import BadRequest, EngineError

GiB = 1 << 30
MiB = 1 << 20

#: Bytes per element of a dtype name, as config.json and vLLM spell them.
DTYPE_BYTES = {
    "float32": 4,
    "float": 4,
    "float16": 2,
    "half": 2,
    "bfloat16": 2,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "int8": 1,
}
#: vLLM's own default share of each GPU.
DEFAULT_GPU_SHARE = 0.9
#: Left free on a GPU that other engines already use (their activations grow a little).
GPU_MARGIN = 0.02
#: The CPU KV pool never takes more than this share of the memory available at load.
CPU_KV_MAX_SHARE = 0.25


class DoesNotFit(EngineError):
    """The model (weights and a full context) does not fit the memory it may use."""


@dataclass(frozen=True)
class ModelShape:
    """What memory planning needs from a Hugging Face config.json and its weights."""

    layers: int
    kv_heads: int
    head_dim: int
    dtype: str
    weights_bytes: int
    #: The longest input the model takes (its position embeddings, or a sentence-transformers
    #: model's max_seq_length); 0 if it does not say.
    context_limit: int = 0

    @classmethod
    def read(cls, path: str | Path) -> ModelShape:
        root = Path(path)
        try:
            config = json.loads((root / "config.json").read_text())
        except (OSError, ValueError) as e:
            raise BadRequest(f"{root.name}: cannot read config.json ({e})") from None
        text = config.get("text_config", config)
        heads = int(text.get("num_attention_heads") or 1)
        hidden = int(text.get("hidden_size") or 0)
        return cls(
            layers=int(text.get("num_hidden_layers") or 0),
            kv_heads=int(text.get("num_key_value_heads") or heads),
            head_dim=int(text.get("head_dim") or hidden // heads),
            dtype=str(text.get("dtype") or text.get("torch_dtype") or config.get("torch_dtype") or "bfloat16"),
            weights_bytes=sum(f.stat().st_size for f in root.glob("*.safetensors")),
            context_limit=_context_limit(root, text),
        )

    def kv_bytes_per_token(self, kv_dtype: str) -> int:
        """K and V for every layer, for one token, in ``kv_dtype`` ("auto": the weights' dtype)."""
        element = DTYPE_BYTES.get(self.dtype if kv_dtype == "auto" else kv_dtype, 2)
        return 2 * self.layers * self.kv_heads * self.head_dim * element

    def weights_in(self, dtype: str) -> int:
        """The weights' size once loaded in ``dtype`` ("auto": as stored)."""
        if dtype == "auto" or self.dtype not in DTYPE_BYTES or dtype not in DTYPE_BYTES:
            return self.weights_bytes
        return self.weights_bytes * DTYPE_BYTES[dtype] // DTYPE_BYTES[self.dtype]


def _context_limit(root: Path, text: dict[str, object]) -> int:
    trained = text.get("max_position_embeddings")
    limits = [trained] if isinstance(trained, int) else []
    try:
        sbert = json.loads((root / "sentence_bert_config.json").read_text())
        if isinstance(sbert.get("max_seq_length"), int):
            limits.append(sbert["max_seq_length"])
    except (OSError, ValueError):
        pass
    return min(limits, default=0)


def cpu_kv_pool(num_ctx: int, parallel: int, per_token: int, available: int) -> int:
    """KV bytes for ``parallel`` sequences of ``num_ctx`` tokens, capped at a share of the
    available memory but never below one full sequence (vLLM pages the rest)."""
    wanted = num_ctx * parallel * per_token
    cap = int(available * CPU_KV_MAX_SHARE)
    return max(num_ctx * per_token, min(wanted, cap))


def check_cpu_fit(name: str, num_ctx: int, per_token: int, kv_bytes: int, weights: int, available: int) -> None:
    """DoesNotFit when the KV pool cannot hold one full context or the whole does not fit in RAM."""
    one = num_ctx * per_token
    if kv_bytes < one:
        raise DoesNotFit(
            f"model {name} does not fit: a context of {num_ctx} tokens needs {one / MiB:.0f} MiB of KV cache "
            f"but the engine has {kv_bytes / MiB:.0f} MiB; lower num_ctx or raise kv_cache_memory_bytes"
        )
    if weights + kv_bytes > available:
        raise DoesNotFit(
            f"model requires more system memory ({(weights + kv_bytes) / GiB:.1f} GiB) than is available "
            f"({available / GiB:.1f} GiB) for {name}; lower num_ctx or parallel, or unload a model"
        )


def available_ram() -> int:
    """Bytes of memory available to new allocations (MemAvailable), 0 if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class GpuMemory:
    """One GPU's memory as NVML reports it now."""

    index: int
    total: int
    free: int


def read_gpu_memory() -> list[GpuMemory]:
    """Every visible NVIDIA GPU's total and free memory, through NVML (which vLLM's CUDA build
    installs); an empty list where NVML is missing. Does not initialise CUDA."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        count = pynvml.nvmlDeviceGetCount()
        indices = [int(i) for i in visible.split(",") if i.strip().isdigit()] if visible else list(range(count))
        out = []
        for i in indices:
            info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i))
            out.append(GpuMemory(index=i, total=int(info.total), free=int(info.free)))
        return out
    finally:
        pynvml.nvmlShutdown()


def gpu_share(name: str, requested: float | None, gpus: Sequence[GpuMemory], weights_per_gpu: int, context_kv_per_gpu: int = 0) -> float:
    """The ``gpu_memory_utilization`` for an engine on ``gpus``, budgeted against what other
    engines (other models) already hold there.

    vLLM claims ``share x total`` on each GPU and refuses to start unless that much is free.
    A share the user asked for must fit as it is; the default (vLLM's 0.9) shrinks to what is
    free, so several models can share a GPU. DoesNotFit when the weights, and the KV cache of
    one full context (``context_kv_per_gpu``), cannot fit in the share.
    """
    if not gpus:
        return requested if requested is not None else DEFAULT_GPU_SHARE
    free_share = min(g.free / g.total for g in gpus) - GPU_MARGIN
    tightest = min(gpus, key=lambda g: g.free / g.total)
    if requested is not None:
        if requested > free_share + GPU_MARGIN:
            raise DoesNotFit(
                f"model {name} does not fit: gpu_memory_utilization {requested:g} claims "
                f"{requested * tightest.total / GiB:.1f} GiB of GPU {tightest.index} but only "
                f"{tightest.free / GiB:.1f} GiB is free (other models hold the rest); lower it, or unload a model"
            )
        share = requested
    else:
        share = min(DEFAULT_GPU_SHARE, free_share)
    if weights_per_gpu >= share * tightest.total:
        raise DoesNotFit(
            f"model {name} does not fit: its weights need {weights_per_gpu / GiB:.1f} GiB per GPU but the engine may use "
            f"{max(share, 0) * tightest.total / GiB:.1f} GiB of GPU {tightest.index}; raise gpu_memory_utilization, "
            f"unload a model, use more GPUs (tensor_parallel_size) or a quantized model"
        )
    left = share * tightest.total - weights_per_gpu
    if context_kv_per_gpu > left:
        raise DoesNotFit(
            f"model {name} does not fit: a full context needs {context_kv_per_gpu / GiB:.2f} GiB of KV cache per GPU but only "
            f"{left / GiB:.2f} GiB of GPU {tightest.index} is left after the weights; lower num_ctx, raise "
            f"gpu_memory_utilization or use more GPUs (tensor_parallel_size)"
        )
    return round(share, 4)
