"""Engine settings: the vLLM engine arguments a model (Modelfile ``PARAMETER``), a request's
``options`` or ``vllama serve`` may set, checked and typed before vLLM sees them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vllama.errors import BadRequest


def _fraction(key: str, value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1:
        return float(value)
    raise BadRequest(f'engine setting "{key}" must be a number above 0 and at most 1, got {value!r}')


def _positive(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 1:
        return int(value)
    raise BadRequest(f'engine setting "{key}" must be a positive integer, got {value!r}')


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadRequest(f'engine setting "{key}" must be true or false, got {value!r}')


def _text(key: str, value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise BadRequest(f'engine setting "{key}" must be a non-empty string, got {value!r}')


def _one_of(*choices: str) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if value in choices:
            return str(value)
        raise BadRequest(f'engine setting "{key}" must be one of {", ".join(choices)}; got {value!r}')

    return check


#: Every engine setting this backend takes, with its check. Each is the vLLM engine
#: argument of the same name.
CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "gpu_memory_utilization": _fraction,
    "kv_cache_memory_bytes": _positive,
    "max_num_seqs": _positive,
    "max_num_batched_tokens": _positive,
    "enable_prefix_caching": _flag,
    "enable_chunked_prefill": _flag,
    "enforce_eager": _flag,
    "dtype": _one_of("auto", "half", "float16", "bfloat16", "float", "float32"),
    "kv_cache_dtype": _text,
    "quantization": _text,
    "tensor_parallel_size": _positive,
    "pipeline_parallel_size": _positive,
    "data_parallel_size": _positive,
    "distributed_executor_backend": _one_of("mp", "ray", "uni", "external_launcher"),
    "data_parallel_backend": _one_of("mp", "ray"),
}

NAMES = frozenset(CHECKS)


def checked(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The engine settings this backend takes, typed; BadRequest for a bad value."""
    return {key: CHECKS[key](key, value) for key, value in settings.items() if key in CHECKS and value is not None}
