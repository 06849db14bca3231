"""From a model, the hardware and the load settings to vLLM's engine arguments: the one
place where Ollama's world (num_ctx, parallel, num_thread) meets vLLM's."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vllama.types import Hardware, LoadSettings, ModelRef
from vllama_vllm import memory
from vllama_vllm.memory import GpuMemory, ModelShape
from vllama_vllm.settings import engine_args

#: On CPU, vLLM's compiled bf16 path starts in minutes; eager float32 in seconds, and eager
#: bf16 is not reliable. These are the CPU defaults unless set.
CPU_DEFAULTS = {"dtype": "float32", "enforce_eager": True}


@dataclass(frozen=True)
class Plan:
    """How to start one vLLM engine: its arguments, the environment of its processes, and
    the sizes /api/ps reports before vLLM has said more."""

    kwargs: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    on_gpu: bool = False
    kv_bytes_per_token: int = 0
    weights_bytes: int = 0
    #: Bytes the engine claims on the local GPUs it uses (share x total of each), 0 on CPU.
    gpu_claim_bytes: int = 0


def plan(
    model: ModelRef,
    hardware: Hardware,
    settings: LoadSettings,
    *,
    gpu_memory: Callable[[], Sequence[GpuMemory]] = memory.read_gpu_memory,
    ram: Callable[[], int] = memory.available_ram,
) -> Plan:
    """Engine arguments for ``model``. Raises BadRequest for a bad engine setting and
    DoesNotFit (with the numbers) when the model cannot fit."""
    layout, num_ctx, available = _layout(model, hardware, settings, gpu_memory, ram)
    if not layout.on_gpu:
        kv_bytes = layout.kwargs["kv_cache_memory_bytes"]
        memory.check_cpu_fit(model.name, num_ctx, layout.kv_bytes_per_token, kv_bytes, layout.weights_bytes, available or 1 << 62)
    return layout


def host_bytes(model: ModelRef, hardware: Hardware, settings: LoadSettings, *, ram: Callable[[], int] = memory.available_ram) -> int | None:
    """System memory a load takes, for the scheduler's check before any load
    (``Backend.memory_needed``): on a CPU, the weights in the engine's dtype (float32 unless
    set) plus the KV pool the plan reserves (``kv_cache_memory_bytes``, not ``num_ctx`` x
    ``parallel``: vLLM pages sequences in it). None on NVIDIA GPUs, where :func:`plan` checks
    each GPU's memory itself and the host holds little more than the process."""
    if hardware.has_nvidia:
        return None
    layout, _, _ = _layout(model, hardware, settings, memory.read_gpu_memory, ram)
    return layout.weights_bytes + int(layout.kwargs["kv_cache_memory_bytes"])


def _layout(
    model: ModelRef,
    hardware: Hardware,
    settings: LoadSettings,
    gpu_memory: Callable[[], Sequence[GpuMemory]],
    ram: Callable[[], int],
) -> tuple[Plan, int, int]:
    """The plan before the CPU fit check, the context it gives each sequence, and the memory
    available (0 on GPUs, or where unknown)."""
    engine = engine_args(settings.engine)
    shape = ModelShape.read(model.path)
    num_ctx = min(settings.num_ctx, shape.context_limit) if shape.context_limit else settings.num_ctx
    on_gpu = hardware.has_nvidia
    if not on_gpu:
        engine = {**CPU_DEFAULTS, **engine}
    kwargs: dict[str, Any] = {
        "model": model.path,
        "tokenizer": model.path,
        "served_model_name": model.name,
        "max_model_len": num_ctx,
        "max_num_seqs": settings.parallel,
        "runner": "pooling" if {"embedding", "rerank"} & set(model.capabilities) else "generate",
        # Stats go to vllama's own logger (see stats.py), not to vLLM's periodic log lines.
        "disable_log_stats": True,
        **engine,
    }
    per_token = shape.kv_bytes_per_token(_kv_dtype(kwargs, shape))
    weights = shape.weights_in(str(kwargs.get("dtype", "auto")))
    env: dict[str, str] = {}
    claim = available = 0
    if on_gpu:
        split = kwargs.get("tensor_parallel_size", 1) * kwargs.get("pipeline_parallel_size", 1)
        local = split * kwargs.get("data_parallel_size", 1)
        gpus = list(gpu_memory())[:local]
        tp = kwargs.get("tensor_parallel_size", 1)
        share = memory.gpu_share(model.name, engine.get("gpu_memory_utilization"), gpus, weights // split, num_ctx * per_token // tp)
        kwargs["gpu_memory_utilization"] = share
        claim = sum(int(share * g.total) for g in gpus)
    else:
        available = ram()
        if "kv_cache_memory_bytes" not in kwargs:
            kwargs["kv_cache_memory_bytes"] = memory.cpu_kv_pool(num_ctx, settings.parallel, per_token, available)
        if settings.num_thread > 0:
            env["VLLM_CPU_OMP_THREADS_BIND"] = _cpu_list(settings.num_thread)
    layout = Plan(kwargs=kwargs, env=env, on_gpu=on_gpu, kv_bytes_per_token=per_token, weights_bytes=weights, gpu_claim_bytes=claim)
    return layout, num_ctx, available


def _kv_dtype(kwargs: dict[str, Any], shape: ModelShape) -> str:
    kv = str(kwargs.get("kv_cache_dtype", "auto"))
    if kv != "auto":
        return kv
    dtype = str(kwargs.get("dtype", "auto"))
    return shape.dtype if dtype == "auto" else dtype


def _cpu_list(threads: int) -> str:
    """The first ``threads`` CPUs this process may run on, as VLLM_CPU_OMP_THREADS_BIND lists them."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    return ",".join(str(c) for c in allowed[:threads])
