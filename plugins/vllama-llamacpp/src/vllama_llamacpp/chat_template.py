"""The model's own Jinja chat template, rendered in a sandbox as Hugging Face renders it."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import msgspec
from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from vllama.errors import BadRequest
from vllama.types import Message, Tool

#: Ollama's Go templates (``{{ .Prompt }}``, ``{{ if .System }}``) are not Jinja.
_GO_TEMPLATE = re.compile(r"\{\{-?\s*(\.|if\s|range\s|end\b|else\b|with\s|template\s)")


def is_jinja(template: str) -> bool:
    """Whether ``template`` is a Jinja chat template rather than an Ollama Go template."""
    return bool(template.strip()) and not _GO_TEMPLATE.search(template)


class ChatTemplate:
    """A compiled chat template. Rendering errors become :class:`~vllama.errors.BadRequest`."""

    def __init__(self, source: str, *, bos_token: str, eos_token: str) -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            self._template = env.from_string(source)
        except TemplateError as e:
            raise BadRequest(f"invalid chat template: {e}") from None
        self._bos = bos_token
        self._eos = eos_token

    def render(self, messages: list[Message], tools: list[Tool] | None = None) -> str:
        """The prompt for ``messages``, ending with the assistant turn's opening."""
        context: dict[str, Any] = {
            "messages": [_message(m) for m in messages],
            "add_generation_prompt": True,
            "bos_token": self._bos,
            "eos_token": self._eos,
        }
        if tools:
            context["tools"] = msgspec.to_builtins(tools)
        try:
            return self._template.render(**context)
        except TemplateError as e:
            raise BadRequest(f"chat template error: {e}") from None


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.thinking:
        out["reasoning_content"] = m.thinking
    if m.tool_calls:
        out["tool_calls"] = [
            {"type": "function", "id": c.id, "function": msgspec.to_builtins(c.function)}
            for c in m.tool_calls
        ]
    if m.tool_name:
        out["name"] = out["tool_name"] = m.tool_name
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def _tojson(value: Any, indent: int | None = None, separators: Any = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise TemplateError(message)
