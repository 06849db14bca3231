"""Ollama's ``options``: names, types, and how they merge into sampling and load settings.

Precedence is Ollama's: defaults, then the model's PARAMETER values, then the request.
Unknown keys are ignored with a warning, as Ollama does; known ones of the wrong type are a 400.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import msgspec

from vllama.errors import BadRequest
from vllama.types import LoadSettings, SamplingOptions

log = logging.getLogger(__name__)

_SAMPLING: dict[str, type] = {
    "num_keep": int, "seed": int, "num_predict": int, "top_k": int, "top_p": float,
    "min_p": float, "typical_p": float, "repeat_last_n": int, "temperature": float,
    "repeat_penalty": float, "presence_penalty": float, "frequency_penalty": float, "stop": list,
}  # fmt: skip
_LOAD: dict[str, type] = {
    "num_ctx": int, "num_batch": int, "num_gpu": int, "main_gpu": int, "use_mmap": bool,
    "num_thread": int, "num_parallel": int,
}  # fmt: skip
#: Options Ollama removed; old clients still send them, so they are accepted and ignored.
REMOVED = frozenset({
    "num_gqa", "rope_frequency_base", "rope_frequency_scale", "numa", "tfs_z", "penalize_newline",
    "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock", "mirostat", "mirostat_tau",
    "mirostat_eta", "draft_num_predict",
})  # fmt: skip
#: Model-level settings that are not Ollama options: the backend to use and how the model writes
#: tool calls (:data:`vllama.tool_calls.FORMATS`).
MODEL_SETTINGS = frozenset({"backend", "tool_parser"})

_TYPE_NAMES = {int: "integer", float: "float", bool: "boolean", list: "array", str: "string"}


def check_value(key: str, value: Any, kind: type) -> Any:
    """Return ``value`` converted to ``kind`` or raise Ollama's type error."""
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is list:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    elif isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise BadRequest(f'option "{key}" must be of type {_TYPE_NAMES[kind]}')


def validate(options: Mapping[str, Any], *, engine_settings: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Check names and types; drop removed options, and unknown ones with one warning.
    ``engine_settings`` are extra names (backend engine settings) accepted as they are."""
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in options.items():
        if value is None or key in REMOVED:
            continue
        kind = _SAMPLING.get(key) or _LOAD.get(key)
        if kind is not None:
            out[key] = check_value(key, value, kind)
        elif key in MODEL_SETTINGS or key in engine_settings:
            out[key] = value
        else:
            unknown.append(key)
    if unknown:
        log.warning("ignoring unknown option%s %s", "s" if len(unknown) > 1 else "", ", ".join(f'"{k}"' for k in unknown))
    if (n := out.get("num_predict")) is not None and n < -2:
        raise BadRequest("num_predict must be -1 (no limit), -2 (fill the context) or a positive number")
    for key in ("num_ctx", "num_batch", "num_parallel"):
        if key in out and out[key] < 1:
            raise BadRequest(f'option "{key}" must be a positive integer')
    return out


def sampling(*layers: Mapping[str, Any]) -> SamplingOptions:
    """Build SamplingOptions from validated option layers, later layers winning."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if k in _SAMPLING})
    if merged.get("seed", 0) < 0:
        merged["seed"] = None
    return msgspec.convert(merged, SamplingOptions)


def load_settings(*layers: Mapping[str, Any], num_ctx: int, parallel: int) -> LoadSettings:
    """Build LoadSettings (``parallel`` is decided by the scheduler); engine settings
    (anything not an Ollama option) go to ``engine``."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    engine = {k: v for k, v in merged.items() if k not in _SAMPLING and k not in _LOAD and k not in MODEL_SETTINGS}
    return LoadSettings(
        num_ctx=merged.get("num_ctx", num_ctx),
        parallel=parallel,
        num_batch=merged.get("num_batch", 512),
        num_thread=merged.get("num_thread", 0),
        num_gpu=merged.get("num_gpu", -1),
        engine=engine,
    )


def is_option(key: str) -> bool:
    return key in _SAMPLING or key in _LOAD or key in REMOVED or key in MODEL_SETTINGS


def value_type(key: str) -> type | None:
    return _SAMPLING.get(key) or _LOAD.get(key)
