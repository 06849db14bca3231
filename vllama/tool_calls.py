"""Tool calls in generated text: the call formats models use, and a stream transform that
turns them into structured :class:`~vllama.types.ToolCall` values.

Engines that emit only text share this one parser (the server applies
:func:`parse_tool_calls` to their event stream); engines with parsers of their own emit
``Delta.tool_calls`` directly and set ``Backend.parses_tool_calls``.

Formats, detected from the chat template (:func:`detect_format`) or named by the Modelfile's
``PARAMETER tool_parser``:

* ``hermes``: Hermes, Qwen 2.5/3 and most ChatML models: ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``;
* ``llama3``: Llama 3.x: ``<|python_tag|>`` or a bare ``{"name": ..., "parameters": ...}``;
* ``mistral``: ``[TOOL_CALLS][{"name": ..., "arguments": ...}]``;
* ``json``: any other template that renders tools: bare JSON objects.

In every format a reply that *starts* with a JSON object (or array) naming an offered tool is
a call too, as is a reply that is only such JSON in a ```json fence: small models often drop
the tags their template asks for, or fence the call as code. Text that only looks
like a call (an unknown name, JSON that does not parse, JSON after prose) stays text.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal

from vllama.types import ChatRequest, Delta, Done, EventStream, ToolCall, ToolCallFunction

ToolFormat = Literal["hermes", "llama3", "mistral", "json"]
FORMATS: tuple[ToolFormat, ...] = ("hermes", "llama3", "mistral", "json")


#: Turns the text between a call's markers into calls; None when it is not calls.
BodyParser = Callable[[str], "list[ToolCall] | None"]


@dataclass(frozen=True)
class Markers:
    """How a format opens (and, if it does, closes) a call in text."""

    start: str
    end: str = ""
    #: The key that holds a call's arguments in the model's own JSON.
    arguments_key: str = "arguments"


MARKERS: dict[ToolFormat, Markers | None] = {
    "hermes": Markers("<tool_call>", "</tool_call>"),
    "llama3": Markers("<|python_tag|>", "", "parameters"),
    "mistral": Markers("[TOOL_CALLS]"),
    "json": None,
}


def detect_format(template: str) -> ToolFormat | None:
    """The call format a chat template teaches its model; None if it renders no tools."""
    if "[TOOL_CALLS]" in template:
        return "mistral"
    if "<tool_call>" in template:
        return "hermes"
    if "<|python_tag|>" in template or "ipython" in template:
        return "llama3"
    if "tools" in template:
        return "json"
    return None


def new_call_id() -> str:
    """An id for a call, in OpenAI's style."""
    return f"call_{secrets.token_hex(6)}"


def calls_from_json(text: str, names: Collection[str]) -> list[ToolCall] | None:
    """The calls in ``text`` (JSON objects, one after another, or a JSON array of them), or
    None unless all of it parses into calls of tools in ``names`` (any name if empty)."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n;,":
            i += 1
        if i >= n:
            break
        try:
            value, i = decoder.raw_decode(text, i)
        except ValueError:
            return None
        values.extend(value if isinstance(value, list) else [value])
    return calls_from_values(values, names)


def calls_from_values(values: list[Any], names: Collection[str]) -> list[ToolCall] | None:
    """Calls from parsed values (``{"name", "arguments"}`` objects, as engine libraries'
    parsers return them), or None unless every value is a call of a tool in ``names``."""
    calls = []
    for value in values:
        call = _call(value, names)
        if call is None:
            return None
        calls.append(call)
    return calls or None


def _call(value: Any, names: Collection[str]) -> ToolCall | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # {"type": "function", "function": {...}}
        value = value["function"]
    name = value.get("name")
    if not isinstance(name, str) or (names and name not in names):
        return None
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ToolCall(id=new_call_id(), function=ToolCallFunction(name=name, arguments=args))


class ToolCallParser:
    """Splits streamed text into plain text and tool calls.

    :meth:`feed` returns what is safe to emit now; text that may be part of a call is held
    until the call closes (or the stream ends, :meth:`flush`). With ``parallel`` false only
    the first call is kept. An engine library's own format comes as ``markers`` and ``body``
    (what parses the text between them), which replace those of ``fmt``.
    """

    def __init__(
        self,
        fmt: ToolFormat,
        names: Collection[str],
        *,
        parallel: bool = True,
        markers: Markers | None = None,
        body: BodyParser | None = None,
    ) -> None:
        self._markers = markers or MARKERS[fmt]
        self._names = frozenset(names)
        self._body: BodyParser = body or (lambda text: calls_from_json(text, self._names))
        self._parallel = parallel
        self._held = ""
        #: "text", "call" (inside a marked call) or "bare" (a reply that opened with JSON).
        self._state = "text"
        self._at_start = True
        self._index = 0

    def feed(self, text: str) -> tuple[str, list[ToolCall]]:
        """Add generated text; return the text to emit and the calls completed by it."""
        self._held += text
        out: list[str] = []
        calls: list[ToolCall] = []
        while self._held:
            if self._state == "bare":
                break
            if self._state == "call":
                if not self._close_call(out, calls):
                    break
                continue
            if self._at_start:
                stripped = self._held.lstrip()
                if not stripped:
                    break
                marker = self._markers.start if self._markers else ""
                if len(stripped) < len(marker) and marker.startswith(stripped):
                    break  # may still be the marker
                if stripped[0] in "{[" and not (marker and stripped.startswith(marker)):
                    self._state = "bare"
                    break
                fenced = _opens_fenced_json(stripped)
                if fenced is None:
                    break  # may still open a fenced call
                if fenced:
                    self._state = "bare"
                    break
                self._at_start = False
            if not self._open_call(out):
                break
        return "".join(out), calls

    def flush(self) -> tuple[str, list[ToolCall]]:
        """At the end of the stream: parse or release whatever is held."""
        held, self._held = self._held, ""
        if self._state == "text" or not held:
            return self._between_calls(held), []
        if self._state == "call":
            assert self._markers is not None
            found = self._body(held)
            return ("", self._number(found)) if found else (self._markers.start + held, [])
        fence = _FENCED.fullmatch(held)
        found = calls_from_json(fence.group(1) if fence else held, self._names)
        return ("", self._number(found)) if found else (held, [])

    def _open_call(self, out: list[str]) -> bool:
        """Emit text up to the next call marker; False when waiting for more text."""
        markers = self._markers
        if markers is None:
            out.append(self._held)
            self._held = ""
            return False
        at = self._held.find(markers.start)
        if at >= 0:
            out.append(self._between_calls(self._held[:at]))
            self._held = self._held[at + len(markers.start) :]
            self._state = "call"
            return True
        keep = _partial_suffix(self._held, markers.start)
        if self._index and not self._held[: len(self._held) - keep].strip():
            return False  # whitespace after a call: held until it proves to be text
        out.append(self._held[: len(self._held) - keep])
        self._held = self._held[len(self._held) - keep :]
        return False

    def _between_calls(self, text: str) -> str:
        """Text before a call, less the whitespace that only separates two calls."""
        return "" if self._index and not text.strip() else text

    def _close_call(self, out: list[str], calls: list[ToolCall]) -> bool:
        """Finish a marked call when its end marker arrives; False when waiting."""
        markers = self._markers
        assert markers is not None
        if not markers.end:
            return False
        at = self._held.find(markers.end)
        if at < 0:
            return False
        body, self._held = self._held[:at], self._held[at + len(markers.end) :]
        self._state = "text"
        found = self._body(body)
        if found:
            calls.extend(self._number(found))
        else:
            out.append(markers.start + body + markers.end)
        return True

    def _number(self, calls: list[ToolCall]) -> list[ToolCall]:
        if not self._parallel:
            calls = calls[: max(0, 1 - self._index)]
        for call in calls:
            call.function.index = self._index
            self._index += 1
        return calls


def request_parser(
    request: ChatRequest, *, lenient_only: bool = False, markers: Markers | None = None, body: BodyParser | None = None
) -> ToolCallParser:
    """The stream parser for a request's offered tools: in its ``tool_format`` where the core
    knows that format, else (or with ``lenient_only``, behind an engine library's own parser)
    only the catch of bare and fenced JSON calls. ``markers`` and ``body`` plug in a library's
    format."""
    fmt: ToolFormat = "json" if lenient_only else next((f for f in FORMATS if f == request.tool_format), "json")
    names = [t.function.name for t in request.tools]
    return ToolCallParser(fmt, names, parallel=request.parallel_tool_calls, markers=markers, body=body)


_FENCED = re.compile(r"\s*```(?:json)?[ \t]*\n(.*?)```\s*", re.DOTALL)


def _opens_fenced_json(text: str) -> bool | None:
    """Whether ``text`` opens a ```json (or bare ```) fence around JSON; None while too
    little has arrived to tell."""
    if not text.startswith("```"):
        return None if "```".startswith(text) else False
    line, newline, rest = text[3:].partition("\n")
    if not newline:
        return None if len(line) < 8 else False
    if line.strip() not in ("", "json"):
        return False
    rest = rest.lstrip()
    return None if not rest else rest[0] in "{["


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that begins ``marker``."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:n]):
            return n
    return 0


async def parse_tool_calls(events: EventStream, parser: ToolCallParser) -> EventStream:
    """The stream transform: text deltas through ``parser``, calls as ``Delta.tool_calls``."""
    try:
        async for event in events:
            if isinstance(event, Done):
                text, calls = parser.flush()
                if text or calls:
                    yield Delta(text=text, tool_calls=calls)
                yield event
                continue
            text, calls = parser.feed(event.text)
            if text or calls or event.thinking or event.logprobs or event.tool_calls:
                yield Delta(text=text, thinking=event.thinking, tool_calls=event.tool_calls + calls, logprobs=event.logprobs)
    finally:
        await events.aclose()
