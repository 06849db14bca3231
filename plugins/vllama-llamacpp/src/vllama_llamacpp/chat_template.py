"""The model's own Jinja chat template, rendered in a sandbox as Hugging Face renders it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from vllama.chat_inputs import template_kwargs, template_messages, template_tools
from vllama.errors import BadRequest
from vllama.types import Message, Think, Tool


class ChatTemplate:
    """A compiled chat template. Rendering errors become :class:`~vllama.errors.BadRequest`."""

    def __init__(self, source: str, *, bos_token: str, eos_token: str) -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            self._template = env.from_string(source)
        except TemplateError as e:
            raise BadRequest(f"invalid chat template: {e}") from None
        self.source = source
        self._bos = bos_token
        self._eos = eos_token

    def render(self, messages: list[Message], tools: list[Tool] | None = None, think: Think = None) -> str:
        """The prompt for ``messages``, ending with the assistant turn's opening; ``think``
        sets the template's thinking switches."""
        context: dict[str, Any] = {
            "messages": template_messages(messages),
            "add_generation_prompt": True,
            "bos_token": self._bos,
            "eos_token": self._eos,
            **template_kwargs(think),
        }
        if tools:
            context["tools"] = template_tools(tools)
        try:
            return self._template.render(**context)
        except TemplateError as e:
            raise BadRequest(f"chat template error: {e}") from None


def _tojson(value: Any, indent: int | None = None, separators: Any = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise TemplateError(message)
