"""Ollama's ``options``: names, types, and how they merge into sampling and load settings.

Precedence is Ollama's: defaults, then the model's PARAMETER values, then the request.
Unknown keys are ignored with a warning, as Ollama does; known ones of the wrong type are a 400.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from vllama.errors import BadRequest
from vllama.types import LoadSettings, SamplingOptions

log = logging.getLogger(__name__)

_SAMPLING: dict[str, type] = {
    "num_keep": int,
    "seed": int,
    "num_predict": int,
    "top_k": int,
    "top_p": float,
    "min_p": float,
    "typical_p": float,
    "repeat_last_n": int,
    "temperature": float,
    "repeat_penalty": float,
    "presence_penalty": float,
    "frequency_penalty": float,
    "stop": list,
}
_LOAD: dict[str, type] = {
    "num_ctx": int,
    "num_batch": int,
    "num_gpu": int,
    "main_gpu": int,
    "use_mmap": bool,
    "num_thread": int,
    "num_parallel": int,
}
#: Options Ollama removed; old clients still send them, so they are accepted and ignored.
REMOVED = frozenset(
    {
        "num_gqa",
        "rope_frequency_base",
        "rope_frequency_scale",
        "numa",
        "tfs_z",
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
        "draft_num_predict",
    }
)
#: Model-level settings that are not Ollama options: the backend to use, how the model writes
#: tool calls (:data:`vllama.tool_calls.FORMATS`) and which of its library's reasoning parsers
#: a backend uses (:meth:`vllama.engine.Backend.reasoning_parsers`).
MODEL_SETTINGS = frozenset({"backend", "tool_parser", "reasoning_parser"})

_TYPE_NAMES = {int: "integer", float: "float", bool: "boolean", list: "array", str: "string"}

#: The largest value a C ``int`` in an engine takes.
INT32_MAX = 2**31 - 1
#: Logical CPUs. More compute threads than that only oversubscribe the cores: llama.cpp's
#: threads spin at every barrier, so a reply slows by orders of magnitude instead of speeding up.
CPUS = os.cpu_count() or 1


@dataclass(frozen=True)
class Range:
    """The values an option takes: ``low <= value <= high`` (``low < value`` when
    ``open_low``), or one of ``also`` (special values outside the interval)."""

    low: float | None = None
    high: float | None = None
    also: tuple[int, ...] = ()
    open_low: bool = False

    def __contains__(self, value: float) -> bool:
        if value in self.also:
            return True
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or value <= self.high

    def __str__(self) -> str:
        if self.low is not None and self.high is not None and not self.open_low:
            text = f"between {_num(self.low)} and {_num(self.high)}"
        elif self.low is not None:
            text = f"{'>' if self.open_low else '>='} {_num(self.low)}" + (f" and <= {_num(self.high)}" if self.high is not None else "")
        elif self.high is not None:
            text = f"<= {_num(self.high)}"
        else:
            text = "any value"
        return ", ".join(str(v) for v in self.also) + (" or " if self.also else "") + text


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


#: The one table of valid values, checked before anything loads (request options and
#: Modelfile PARAMETERs). Limits that depend on the model (``num_ctx`` against the trained
#: context, ``num_gpu`` against the layer count) are checked by :func:`check_for_model`.
RANGES: dict[str, Range] = {
    "num_keep": Range(-1, INT32_MAX),
    "seed": Range(-(2**63), 2**63 - 1),  # Ollama's Go int
    "num_predict": Range(0, INT32_MAX, also=(-1, -2)),
    "top_k": Range(0, INT32_MAX),
    "top_p": Range(0, 1),
    "min_p": Range(0, 1),
    "typical_p": Range(0, 1),
    "repeat_last_n": Range(-1, INT32_MAX),
    "temperature": Range(0),
    "repeat_penalty": Range(0, open_low=True),
    "presence_penalty": Range(-2, 2),
    "frequency_penalty": Range(-2, 2),
    "num_ctx": Range(1, 2**24),
    "num_batch": Range(1, 16384),
    "num_gpu": Range(0, 999, also=(-1,)),
    "main_gpu": Range(0, 255),
    "num_thread": Range(0, CPUS),
    "num_parallel": Range(1, 256),
}


def check_range(key: str, value: Any) -> None:
    """Raise a 400 naming the option and its range when ``value`` (of the option's type)
    is outside it."""
    valid = RANGES.get(key)
    if valid is not None and value not in valid:
        raise BadRequest(f'option "{key}" must be {valid}, got {value!r}')


def check_for_model(options: Mapping[str, Any], info: Mapping[str, Any]) -> None:
    """The limits that depend on the model's metadata (``info``, GGUF keys): ``num_gpu``
    at most its layer count (+1 for the output layer, as llama.cpp counts them) unless it
    is -1 or 999 (all layers)."""
    layers = info.get(f"{info.get('general.architecture', '')}.block_count")
    gpu = options.get("num_gpu")
    if isinstance(layers, int) and gpu is not None and gpu not in (-1, 999) and gpu > layers + 1:
        raise BadRequest(f'option "num_gpu" must be -1, 999 (all layers) or between 0 and {layers + 1} (the model\'s layers), got {gpu}')


def check_value(key: str, value: Any, kind: type) -> Any:
    """Return ``value`` converted to ``kind`` or raise Ollama's type error."""
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer past any float: outside every range
            raise BadRequest(f'option "{key}" must be {RANGES[key]}, got {value}') from None
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
            check_range(key, out[key])
        elif key in MODEL_SETTINGS or key in engine_settings:
            out[key] = value
        else:
            unknown.append(key)
    if unknown:
        log.warning("ignoring unknown option%s %s", "s" if len(unknown) > 1 else "", ", ".join(f'"{k}"' for k in unknown))
    return out


class LoadOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What a request asks of the load: each None where no layer sets it (the scheduler's
    default applies), and the engine settings by name."""

    num_ctx: int | None = None
    num_batch: int | None = None
    num_thread: int | None = None
    num_gpu: int | None = None
    engine: dict[str, Any] = {}

    def settings(self, *, num_ctx: int, parallel: int) -> LoadSettings:
        """The LoadSettings, with ``num_ctx`` as the default context (``parallel`` is the
        scheduler's decision)."""
        return LoadSettings(
            num_ctx=num_ctx if self.num_ctx is None else self.num_ctx,
            parallel=parallel,
            num_batch=512 if self.num_batch is None else self.num_batch,
            num_thread=0 if self.num_thread is None else self.num_thread,
            num_gpu=-1 if self.num_gpu is None else self.num_gpu,
            engine=dict(self.engine),
        )


class RequestOptions(msgspec.Struct, frozen=True, kw_only=True):
    """A request's options, checked and merged once over the model's PARAMETER lines (and
    the server's engine defaults): what sampling uses, and what loading uses."""

    sampling: SamplingOptions = msgspec.field(default_factory=SamplingOptions)
    load: LoadOptions = msgspec.field(default_factory=LoadOptions)


def merge(*layers: Mapping[str, Any]) -> RequestOptions:
    """Merge validated option layers, later layers winning: sampling options, load options,
    and engine settings (anything not an Ollama option or a model setting)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    sampling = {k: v for k, v in merged.items() if k in _SAMPLING}
    if sampling.get("seed", 0) < 0:
        sampling["seed"] = None
    load = LoadOptions(
        num_ctx=merged.get("num_ctx"),
        num_batch=merged.get("num_batch"),
        num_thread=merged.get("num_thread"),
        num_gpu=merged.get("num_gpu"),
        engine={k: v for k, v in merged.items() if k not in _SAMPLING and k not in _LOAD and k not in MODEL_SETTINGS},
    )
    return RequestOptions(sampling=msgspec.convert(sampling, SamplingOptions), load=load)


def is_option(key: str) -> bool:
    return key in _SAMPLING or key in _LOAD or key in REMOVED or key in MODEL_SETTINGS


def value_type(key: str) -> type | None:
    return _SAMPLING.get(key) or _LOAD.get(key)
