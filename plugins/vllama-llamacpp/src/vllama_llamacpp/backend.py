"""The llama.cpp backend: GGUF models on CPU and Apple silicon (Metal)."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, ClassVar

import msgspec

from vllama.engine import Backend, Engine, EngineSettings, Support
from vllama.types import Hardware, LoadSettings, ModelRef

#: Sequences an engine runs at once by default.
DEFAULT_PARALLEL = 4


class LlamaCppSettings(EngineSettings):
    """The llama.cpp engine's settings."""

    #: MiB of host memory for prompt states kept after their sequences leave (0: none; the
    #: cells a free slot still holds are reused either way).
    prefix_cache_mb: Annotated[int, msgspec.Meta(ge=0)] = 1024
    #: Draft tokens a greedy sequence guesses from its own prompt and reply per step, checked in
    #: the same batch (prompt-lookup speculative decoding; 0: off).
    draft_tokens: Annotated[int, msgspec.Meta(ge=0, le=64)] = 0


class LlamaCppBackend(Backend):
    """Runs GGUF models with llama.cpp, batching concurrent requests on one context."""

    name: ClassVar[str] = "llamacpp"
    formats: ClassVar[frozenset[str]] = frozenset({"gguf"})
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"completion", "chat", "embedding", "format", "logprobs", "tools", "insert", "rerank", "thinking"}
    )
    settings_type: ClassVar[type[EngineSettings]] = LlamaCppSettings

    @classmethod
    def supports(cls, model: ModelRef, hardware: Hardware) -> Support | None:
        if model.format != "gguf":
            return None
        if hardware.has_metal:
            return Support(score=50, reason="llama.cpp with Metal", parallel=DEFAULT_PARALLEL)
        if any(d.kind != "cpu" for d in hardware.devices):
            return Support(score=10, reason="llama.cpp as a fallback", parallel=DEFAULT_PARALLEL)
        return Support(score=50, reason="llama.cpp on CPU", parallel=DEFAULT_PARALLEL)

    @classmethod
    async def load(cls, model: ModelRef, hardware: Hardware, settings: LoadSettings) -> Engine:
        # Idle OpenMP threads sleep instead of spinning: a spinning pool that shares its cores
        # with the server (or anything else) slows decoding a hundredfold. Set before llama.cpp
        # loads; a value the user set wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from vllama_llamacpp.engine import LlamaCppEngine

        return await asyncio.to_thread(
            LlamaCppEngine,
            model,
            settings,
            n_threads=threads_for(hardware, settings),
            n_gpu_layers=gpu_layers_for(hardware, settings),
        )


def threads_for(hardware: Hardware, settings: LoadSettings) -> int:
    """``num_thread`` when set, else one thread per CPU core the process may use."""
    if settings.num_thread > 0:
        return settings.num_thread
    cpu = hardware.cpu
    return max(1, cpu.cores if cpu else 1)


def gpu_layers_for(hardware: Hardware, settings: LoadSettings) -> int:
    """Layers to offload: none without an accelerator, else ``num_gpu`` (-1: all)."""
    if not any(d.kind != "cpu" for d in hardware.devices):
        return 0
    if hardware.has_metal:
        return -1 if settings.num_gpu < 0 else settings.num_gpu
    return settings.num_gpu
