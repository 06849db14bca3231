"""Tool calls through vLLM's own parsers (its tool-parser registry, driven as vLLM's server
drives it), with the core's lenient catch of bare and fenced JSON calls behind them.

vLLM's parsers know dozens of formats (``PARAMETER tool_parser qwen3_coder``, ``pythonic``,
``granite``, ``kimi_k2``...); the core's names map to vLLM's own (:data:`VLLM_NAMES`). Small
models often drop the tags their template asks for, which vLLM's parsers leave as content:
the core's ``json`` parser then catches a reply that is only a call of an offered tool, as it
does on every engine.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vllama.chat_inputs import template_tools
from vllama.tool_calls import FORMATS, new_call_id
from vllama.types import ChatRequest, ToolCall, ToolCallFunction

log = logging.getLogger("vllama.vllm")

#: vLLM's parser for each of the core's formats ("json" has none: the core parses it).
VLLM_NAMES = {"hermes": "hermes", "llama3": "llama3_json", "mistral": "mistral"}


@functools.cache
def registered() -> frozenset[str]:
    """The names in vLLM's tool-parser registry (imports vLLM: call it off the event loop)."""
    from vllm.tool_parsers import ToolParserManager

    return frozenset(ToolParserManager.list_registered())


def vllm_name(fmt: str) -> str | None:
    """vLLM's parser for a request's ``tool_format``, or None where the core parses it."""
    if fmt in FORMATS:
        return VLLM_NAMES.get(fmt)
    return fmt


@dataclass
class _Call:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class VllmToolCalls:
    """One request's vLLM parser: feeds it each output delta, as vLLM's server does, and
    assembles the calls it streams (a name, then argument fragments) into whole calls."""

    parser: Any
    request: Any
    parallel: bool
    _calls: dict[int, _Call] = field(default_factory=dict)
    _done: int = 0

    def feed(self, text: str, token_ids: Sequence[int], prompt: list[int], *, finished: bool) -> tuple[str, list[ToolCall]]:
        """The text to emit and the calls completed by this delta (every open one at the end)."""
        message = self.parser.parse_delta(text, list(token_ids), self.request, prompt, finished=finished)
        content = (message.content or "") if message is not None else ""
        for delta in message.tool_calls if message is not None else ():
            call = self._calls.setdefault(delta.index, _Call())
            call.id = call.id or (delta.id or "")
            if delta.function is not None:
                call.name += delta.function.name or ""
                call.arguments += delta.function.arguments or ""
        # A call is whole once a later one has begun, or at the end.
        ready = sorted(self._calls) if finished else sorted(self._calls)[:-1]
        completed: list[ToolCall] = []
        for index in ready:
            call = self._calls.pop(index)
            whole = self._whole(call)
            if whole is None:  # not a call after all: its text goes back to the reply
                content += call.arguments
            elif self.parallel or self._done == 0:
                whole.function.index = self._done
                self._done += 1
                completed.append(whole)
        return content, completed

    @staticmethod
    def _whole(call: _Call) -> ToolCall | None:
        try:
            arguments = json.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError:
            return None
        if not call.name or not isinstance(arguments, dict):
            return None
        return ToolCall(id=call.id or new_call_id(), function=ToolCallFunction(name=call.name, arguments=arguments))


def tool_calls_for(tokenizer: Any, request: ChatRequest) -> VllmToolCalls | None:
    """vLLM's parser for this request, or None when vLLM has none for its format or cannot
    use it with this model's tokenizer (the core then parses the text)."""
    name = vllm_name(request.tool_format)
    if not request.tools or name is None:
        return None
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.parser.parser_manager import ParserManager

    wire = ChatCompletionRequest.model_validate({
        "model": "vllama", "messages": [{"role": "user", "content": ""}], "tools": template_tools(request.tools),
        "tool_choice": "auto", "parallel_tool_calls": request.parallel_tool_calls,
    })  # fmt: skip
    try:
        parser_cls = ParserManager.get_parser(tool_parser_name=name, enable_auto_tools=True)
        assert parser_cls is not None
        parser = parser_cls(tokenizer, wire.tools)
    except Exception as e:  # vLLM raises many kinds for a tokenizer it cannot use
        log.warning("vLLM's %s tool parser cannot be used with this model (%s); the core parses calls", name, e)
        return None
    return VllmToolCalls(parser, wire, request.parallel_tool_calls)
