"""Engine settings: the vLLM engine arguments a model (Modelfile ``PARAMETER``), a request's
``options`` or ``vllama serve`` may set, typed and checked before vLLM sees them. Each field is
the vLLM engine argument of the same name; None leaves vLLM's (or vllama's) default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from vllama.engine import EngineSettings

Positive = Annotated[int, msgspec.Meta(ge=1)]


class VllmSettings(EngineSettings):
    """The vLLM engine arguments vllama passes through."""

    gpu_memory_utilization: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None
    kv_cache_memory_bytes: Positive | None = None
    max_num_seqs: Positive | None = None
    max_num_batched_tokens: Positive | None = None
    enable_prefix_caching: bool | None = None
    enable_chunked_prefill: bool | None = None
    enforce_eager: bool | None = None
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] | None = None
    kv_cache_dtype: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    quantization: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    tensor_parallel_size: Positive | None = None
    pipeline_parallel_size: Positive | None = None
    data_parallel_size: Positive | None = None
    distributed_executor_backend: Literal["mp", "ray", "uni", "external_launcher"] | None = None
    data_parallel_backend: Literal["mp", "ray"] | None = None


def engine_args(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The engine arguments ``settings`` give, typed (those left unset are absent)."""
    typed = VllmSettings.of(settings)
    return {f.name: value for f in msgspec.structs.fields(typed) if (value := getattr(typed, f.name)) is not None}
