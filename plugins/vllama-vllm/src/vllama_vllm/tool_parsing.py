"""Tool calls and reasoning through vLLM's own parsers (its tool-parser and reasoning-parser
registries, composed and driven as vLLM's server drives them), with the core's lenient catch
of bare and fenced JSON calls behind them.

The reasoning parser is the Modelfile's ``PARAMETER reasoning_parser NAME``, else the one for
the thinking format of the model's template (:data:`REASONING_NAMES`).

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

from vllama.chat_inputs import template_kwargs, template_tools
from vllama.thinking import HARMONY, THINK, ThinkingFormat
from vllama.tool_calls import FORMATS, new_call_id
from vllama.types import ChatRequest, GenerateRequest, ModelRef, ToolCall, ToolCallFunction

log = logging.getLogger("vllama.vllm")

#: vLLM's parser for each of the core's formats ("json" has none: the core parses it).
VLLM_NAMES = {"hermes": "hermes", "llama3": "llama3_json", "mistral": "mistral"}
#: vLLM's reasoning parser for the thinking formats the core knows (others: the core's parser).
REASONING_NAMES = {THINK: "qwen3", HARMONY: "openai_gptoss"}


@functools.cache
def registered() -> frozenset[str]:
    """The names in vLLM's tool-parser registry (imports vLLM: call it off the event loop)."""
    from vllm.tool_parsers import ToolParserManager

    return frozenset(ToolParserManager.list_registered())


@functools.cache
def reasoning_registered() -> frozenset[str]:
    """The names in vLLM's reasoning-parser registry (imports vLLM: call it off the event loop)."""
    from vllm.reasoning import ReasoningParserManager

    return frozenset(ReasoningParserManager.list_registered())


def reasoning_name(ref: ModelRef, fmt: ThinkingFormat | None) -> str | None:
    """vLLM's reasoning parser for the model: the Modelfile's, else its template's format's."""
    named = ref.parameters.get("reasoning_parser")
    if isinstance(named, str) and named:
        return named
    return REASONING_NAMES.get(fmt) if fmt is not None else None


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
class Parsed:
    """What one output delta holds once parsed."""

    thinking: str = ""
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)


@dataclass
class VllmParsing:
    """One request's vLLM parser: feeds it each output delta, as vLLM's server does, splits
    off the reasoning (whitespace after it is not output, as in Ollama) and assembles the
    calls it streams (a name, then argument fragments) into whole calls."""

    parser: Any
    request: Any
    parallel: bool
    _calls: dict[int, _Call] = field(default_factory=dict)
    _done: int = 0
    _started: bool = False
    _reasoned: bool = False
    _answered: bool = False

    def feed(self, text: str, token_ids: Sequence[int], prompt: list[int], *, finished: bool) -> Parsed:
        """The thinking and text to emit and the calls completed by this delta (every open one at the end)."""
        message = self.parser.parse_delta(text, list(token_ids), self.request, prompt, finished=finished)
        thinking = (message.reasoning or "") if message is not None else ""
        if thinking and not self._started:
            thinking = thinking.lstrip()
        self._started = self._started or bool(thinking)
        self._reasoned = self._reasoned or bool(thinking)
        content = (message.content or "") if message is not None else ""
        if self._reasoned and not self._answered:
            content = content.lstrip()
        self._answered = self._answered or bool(content)
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
        return Parsed(thinking, content, completed)

    @staticmethod
    def _whole(call: _Call) -> ToolCall | None:
        try:
            arguments = json.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError:
            return None
        if not call.name or not isinstance(arguments, dict):
            return None
        return ToolCall(id=call.id or new_call_id(), function=ToolCallFunction(name=call.name, arguments=arguments))


def parsing_for(tokenizer: Any, request: GenerateRequest | ChatRequest, reasoning: str | None) -> VllmParsing | None:
    """vLLM's parsers for this request: its tool parser when tools are offered, and the
    ``reasoning`` parser when the request thinks; None when vLLM has neither for it or cannot
    use them with this model's tokenizer (the core then parses the text)."""
    chat = request if isinstance(request, ChatRequest) and request.tools else None
    tool_name = vllm_name(chat.tool_format) if chat is not None else None
    reasoning = reasoning if request.think else None
    if tool_name is None and reasoning is None:
        return None
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.parser.parser_manager import ParserManager

    kwargs = template_kwargs(request.think)
    body: dict[str, Any] = {"model": "vllama", "messages": [{"role": "user", "content": ""}], "chat_template_kwargs": kwargs}
    if chat is not None:
        body |= {"tools": template_tools(chat.tools), "tool_choice": "auto", "parallel_tool_calls": chat.parallel_tool_calls}
    wire = ChatCompletionRequest.model_validate(body)
    try:
        parser_cls = ParserManager.get_parser(
            tool_parser_name=tool_name,
            reasoning_parser_name=reasoning,
            enable_auto_tools=tool_name is not None,
            is_harmony=reasoning == "openai_gptoss",
        )
        assert parser_cls is not None
        parser = parser_cls(tokenizer, wire.tools, chat_template_kwargs=kwargs)
    except Exception as e:  # vLLM raises many kinds for a tokenizer it cannot use
        log.warning("vLLM's parsers (tools %s, reasoning %s) cannot be used with this model (%s); the core parses", tool_name, reasoning, e)
        return None
    return VllmParsing(parser, wire, chat.parallel_tool_calls if chat is not None else True)
