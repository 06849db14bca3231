"""The vLLM backend: Hugging Face safetensors models, the engine of choice on NVIDIA GPUs."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, ClassVar

from vllama.engine import Backend, Engine, EngineSettings, Support
from vllama.types import Hardware, LoadSettings, ModelRef
from vllama_vllm.settings import VllmSettings

if TYPE_CHECKING:
    from vllama_vllm.engine import VllmEngine

log = logging.getLogger("vllama.vllm")

#: Sequences an engine batches by default: vLLM's own default on a GPU; fewer on a CPU,
#: where each sequence costs real compute.
GPU_PARALLEL = 256
CPU_PARALLEL = 8


#: What vLLM does with an embedding model, a cross-encoder, and with any other; with a vision
#: encoder, images too (vLLM's multimodal inputs).
EMBEDDER = frozenset({"embedding"})
RERANKER = frozenset({"rerank"})
GENERATOR = frozenset({"completion", "chat", "tools", "thinking", "format", "logprobs", "insert"})
VISION = frozenset({"vision"})


class VllmBackend(Backend):
    """Runs safetensors models in vLLM's async engine with continuous batching.

    The engine core (weights, KV cache, the GPU workers) runs in processes vLLM starts and
    stops itself, so this backend is not isolated in a vllama worker: an engine core that
    dies marks the engine dead, and the next request reloads it.
    """

    name: ClassVar[str] = "vllm"
    formats: ClassVar[frozenset[str]] = frozenset({"safetensors"})
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"completion", "chat", "embedding", "tools", "format", "logprobs", "insert", "vision", "rerank", "thinking"}
    )
    isolated: ClassVar[bool] = False
    parses_tool_calls: ClassVar[bool] = True
    settings_type: ClassVar[type[EngineSettings]] = VllmSettings

    @classmethod
    def memory_needed(cls, model: ModelRef, hardware: Hardware, settings: LoadSettings) -> int | None:
        """On a CPU the weights in vLLM's dtype plus the KV pool vLLM reserves itself; on NVIDIA
        GPUs None: the plan checks GPU memory."""
        from vllama_vllm.plan import host_bytes

        return host_bytes(model, hardware, settings)

    @classmethod
    def tool_parsers(cls) -> Collection[str]:
        """Every parser in vLLM's tool-parser registry."""
        from vllama_vllm.tool_parsing import registered

        return registered()

    @classmethod
    def reasoning_parsers(cls) -> Collection[str]:
        """Every parser in vLLM's reasoning-parser registry."""
        from vllama_vllm.tool_parsing import reasoning_registered

        return reasoning_registered()

    @classmethod
    def supports(cls, model: ModelRef, hardware: Hardware) -> Support | None:
        if model.format != "safetensors" or importlib.util.find_spec("vllm") is None:
            return None
        # vLLM runs a model as a generator or, with its pooling runner, as an embedder or a cross-encoder.
        serves = RERANKER if "rerank" in model.capabilities else EMBEDDER if "embedding" in model.capabilities else GENERATOR
        if "vision" in model.capabilities:
            serves |= VISION
        if hardware.has_nvidia:
            return Support(score=100, reason="vLLM on NVIDIA", parallel=GPU_PARALLEL, capabilities=serves)
        return Support(score=20, reason="vLLM's CPU build, as a fallback", parallel=CPU_PARALLEL, capabilities=serves)

    @classmethod
    async def load(cls, model: ModelRef, hardware: Hardware, settings: LoadSettings) -> Engine:
        # Importing vLLM and starting its engine take seconds to minutes: off the event loop,
        # so the server answers (and lists the model as loading) meanwhile.
        engine = await asyncio.to_thread(_start, model, hardware, settings)
        try:
            await engine.warm_up()
        except BaseException:
            await engine.close()
            raise
        return engine


def _start(model: ModelRef, hardware: Hardware, settings: LoadSettings) -> VllmEngine:
    from vllama_vllm.plan import plan

    layout = plan(model, hardware, settings)
    log.info("starting vLLM for %s: %s", model.name, layout.kwargs)
    from vllama_vllm.engine import start

    return start(model, layout)
