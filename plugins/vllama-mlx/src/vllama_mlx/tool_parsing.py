"""Tool calls through mlx-lm's own parsers: each of its formats (``mlx_lm.tool_parsers``) gives
the markers around a call and the function that reads the text between them; the core's
stream parser splits the reply at those markers, as mlx-lm's server does, and keeps its
lenient catch of a reply that is only a bare or fenced JSON call.

The parser is the Modelfile's ``PARAMETER tool_parser`` (one of mlx-lm's names, or one of the
core's formats), else the one mlx-lm infers from the model's chat template, else the core's
format for the template.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from vllama.chat_inputs import template_tools
from vllama.tool_calls import FORMATS, Markers, ToolCallParser, calls_from_values, request_parser
from vllama.types import ChatRequest, ModelRef, ToolCall

#: mlx-lm's parser for each of the core's formats that it has.
MLX_NAMES = {"hermes": "json_tools", "mistral": "mistral"}


@functools.cache
def available() -> frozenset[str]:
    """The names of mlx-lm's tool parsers, found without importing mlx-lm."""
    spec = importlib.util.find_spec("mlx_lm")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    folders = [Path(p) / "tool_parsers" for p in spec.submodule_search_locations]
    return frozenset(f.stem for folder in folders if folder.is_dir() for f in folder.glob("*.py") if not f.name.startswith("_"))


def module_name(ref: ModelRef, tokenizer: Any, fmt: str) -> str | None:
    """mlx-lm's parser for this model and request format; None where the core parses."""
    named = ref.parameters.get("tool_parser")
    if isinstance(named, str):
        return MLX_NAMES.get(named) if named in FORMATS else named
    inferred = getattr(tokenizer, "init_kwargs", {}).get("tool_parser_type")
    return inferred if isinstance(inferred, str) else MLX_NAMES.get(fmt)


def parser_for(name: str | None, request: ChatRequest) -> ToolCallParser:
    """The stream parser for a request: mlx-lm's markers and reader where it has a parser,
    else the core's parser for the request's format."""
    if name is None or name not in available():
        return request_parser(request)
    names = [t.function.name for t in request.tools]
    module: ModuleType = importlib.import_module(f"mlx_lm.tool_parsers.{name}")
    specs = template_tools(request.tools)

    def body(text: str) -> list[ToolCall] | None:
        try:
            parsed = module.parse_tool_call(text, specs)
        except Exception:  # mlx-lm's parsers raise what their format does: not a call
            return None
        return calls_from_values(parsed if isinstance(parsed, list) else [parsed], names)

    markers = Markers(module.tool_call_start, module.tool_call_end)
    return request_parser(request, lenient_only=True, markers=markers, body=body)
