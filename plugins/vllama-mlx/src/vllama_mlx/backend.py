"""The MLX backend: safetensors and MLX-format models, first choice on Apple silicon."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import ClassVar, Literal

from vllama.engine import Backend, Engine, EngineSettings, Support
from vllama.types import Hardware, LoadSettings, ModelRef

#: Sequences an engine runs at once by default.
DEFAULT_PARALLEL = 4
#: On Apple silicon MLX is the engine the hardware is for.
METAL_SCORE = 90
#: Elsewhere (Linux CPUs with ``mlx[cpu]``) it works, slowly: any other engine should win.
FALLBACK_SCORE = 5


def mlx_installed() -> bool:
    """Whether mlx and mlx-lm can be imported, found without importing them."""
    return all(importlib.util.find_spec(name) is not None for name in ("mlx", "mlx_lm"))


class MlxSettings(EngineSettings):
    """The MLX engine's settings."""

    #: Compute in this type instead of the weights' own ("auto"); vLLM's names.
    dtype: Literal["auto", "float32", "float", "float16", "half", "bfloat16"] = "auto"


class MlxBackend(Backend):
    """Runs Hugging Face safetensors and MLX models with mlx-lm, batching concurrent requests."""

    name: ClassVar[str] = "mlx"
    formats: ClassVar[frozenset[str]] = frozenset({"safetensors", "mlx"})
    capabilities: ClassVar[frozenset[str]] = frozenset({"completion", "chat", "tools", "format", "logprobs", "insert", "thinking"})
    #: Calls are parsed in the engine, with mlx-lm's own parsers where it has one.
    parses_tool_calls: ClassVar[bool] = True
    settings_type: ClassVar[type[EngineSettings]] = MlxSettings

    @classmethod
    def tool_parsers(cls) -> frozenset[str]:
        """Every parser mlx-lm ships (``mlx_lm.tool_parsers``)."""
        from vllama_mlx.tool_parsing import available

        return available()

    @classmethod
    def supports(cls, model: ModelRef, hardware: Hardware) -> Support | None:
        if model.format not in cls.formats or not mlx_installed():
            return None
        if hardware.has_metal:
            return Support(score=METAL_SCORE, reason="MLX on Apple silicon", parallel=DEFAULT_PARALLEL)
        return Support(score=FALLBACK_SCORE, reason="MLX on the CPU (slow; a fallback)", parallel=DEFAULT_PARALLEL)

    @classmethod
    async def load(cls, model: ModelRef, hardware: Hardware, settings: LoadSettings) -> Engine:
        from vllama_mlx.engine import MlxEngine

        return await asyncio.to_thread(MlxEngine, model, settings, unified_memory=hardware.has_metal)
