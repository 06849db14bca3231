"""Thinking in generated text: how a model marks its reasoning, and one incremental parser
that splits a reply into thinking and answer.

Two ways of marking are known, found in the chat template (:func:`thinking_format`):

* tags (:class:`Tags`), ``<think>`` ... ``</think>`` and the like, as DeepSeek-R1, Qwen3 and
  most reasoning models write them. The template's generation prompt may already open the
  tag, so the reply starts inside it: the engine that rendered the prompt says so
  (:func:`prompt_opens`);
* harmony channels (gpt-oss): ``<|channel|>analysis<|message|>`` ... ``<|end|>`` is thinking,
  the ``final`` channel the answer.

As in Ollama, whitespace right after a tag is not output, and only a reply that *begins* with
the opening tag (after whitespace) thinks: a tag later in the answer is text.

Engines that stream only text run their replies through :func:`splitter` (the toolkit's
:class:`~vllama.batching.Sequence` does it); vLLM uses its own reasoning parsers where they
fit the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vllama.types import Think


@dataclass(frozen=True)
class Tags:
    """A thinking section's opening and closing tags."""

    open: str
    close: str


@dataclass(frozen=True)
class Harmony:
    """gpt-oss's harmony format: messages on channels."""


ThinkingFormat = Tags | Harmony

THINK = Tags("<think>", "</think>")
HARMONY = Harmony()
#: Tags known from reasoning models' templates, tried in this order.
KNOWN_TAGS = (
    THINK,
    Tags("<thinking>", "</thinking>"),
    Tags("<seed:think>", "</seed:think>"),
    Tags("<|START_THINKING|>", "<|END_THINKING|>"),
    Tags("◁think▷", "◁/think▷"),
)
_HARMONY_MARKS = ("<|channel|>", "<|message|>")


def thinking_format(template: str) -> ThinkingFormat | None:
    """How the model that ``template`` renders for marks its thinking; None if it does not think."""
    if all(mark in template for mark in _HARMONY_MARKS):
        return HARMONY
    for tags in KNOWN_TAGS:
        if tags.open in template:
            return tags
    if "enable_thinking" in template:
        return THINK  # templates that switch thinking but leave the tags to the model
    return None


def can_disable(template: str) -> bool:
    """Whether ``think: false`` can turn the model's thinking off: its template reads
    ``enable_thinking`` (Qwen3's switch)."""
    return "enable_thinking" in template


def prompt_opens(fmt: ThinkingFormat, prompt: str) -> bool:
    """Whether a rendered ``prompt`` ends inside an open thinking tag (the reply then starts
    as thinking), as DeepSeek-R1's and some Qwen3 templates render the generation prompt."""
    return isinstance(fmt, Tags) and prompt.rstrip().endswith(fmt.open)


class Splitter(Protocol):
    """Splits streamed text into thinking and answer."""

    @property
    def answering(self) -> bool:
        """Whether the reply has gone past its thinking (what follows is the answer)."""

    def feed(self, text: str) -> tuple[str, str]:
        """Add generated text; return the (thinking, answer) text that is now safe to emit."""

    def flush(self) -> tuple[str, str]:
        """At the end of the reply: the (thinking, answer) text still held."""


def splitter(fmt: ThinkingFormat | None, think: Think, prompt: str) -> Splitter | None:
    """The splitter for a reply to ``prompt`` (its rendered text, or at least its end) when
    the request thinks; None when it does not (``think`` false or unset: text stays text)."""
    if fmt is None or not think:
        return None
    if isinstance(fmt, Harmony):
        return HarmonyParser()
    return TagParser(fmt, inside=prompt_opens(fmt, prompt))


class TagParser:
    """Thinking between tags at the start of a reply; Ollama's ``thinking.Parser``, incremental.

    Text that may be the start of a tag is held until it is known; :meth:`flush` releases it.
    """

    def __init__(self, tags: Tags, *, inside: bool = False) -> None:
        self.tags = tags
        self._held = ""
        #: "looking" for the opening tag, "thinking", or "answer"; eating whitespace after a tag.
        self._state = "thinking" if inside else "looking"
        self._eat = inside

    @property
    def answering(self) -> bool:
        return self._state == "answer"

    def feed(self, text: str) -> tuple[str, str]:
        self._held += text
        thinking: list[str] = []
        answer: list[str] = []
        while self._step(thinking, answer):
            pass
        return "".join(thinking), "".join(answer)

    def flush(self) -> tuple[str, str]:
        held, self._held = self._held, ""
        if self._state == "thinking":
            return held, ""
        return "", held.lstrip() if self._eat else held

    def _step(self, thinking: list[str], answer: list[str]) -> bool:
        """Consume what the state allows; True to look again."""
        if self._eat:
            stripped = self._held.lstrip()
            if not stripped:
                self._held = ""
                return False
            self._held, self._eat = stripped, False
        if self._state == "looking":
            stripped = self._held.lstrip()
            if stripped.startswith(self.tags.open):
                self._held = stripped[len(self.tags.open) :]
                self._state, self._eat = "thinking", True
                return True
            if not stripped or self.tags.open.startswith(stripped):
                return False  # may still open
            self._state = "answer"
        if self._state == "thinking":
            at = self._held.find(self.tags.close)
            if at >= 0:
                thinking.append(self._held[:at])
                self._held = self._held[at + len(self.tags.close) :]
                self._state, self._eat = "answer", True
                return True
            keep = partial_suffix(self._held, self.tags.close)
            thinking.append(self._held[: len(self._held) - keep])
            self._held = self._held[len(self._held) - keep :]
            return False
        answer.append(self._held)
        self._held = ""
        return False


#: Harmony's special tokens: a message is ``<|start|>{header}<|message|>{body}<|end|>``.
_START, _CHANNEL, _MESSAGE = "<|start|>", "<|channel|>", "<|message|>"
_ENDS = ("<|end|>", "<|return|>", "<|call|>")


class HarmonyParser:
    """gpt-oss replies: the ``analysis`` channel is thinking, every other channel the answer.

    A reply starts in a message header (the prompt ends with ``<|start|>assistant``); the
    header's ``<|channel|>NAME`` picks where the body goes; the special tokens themselves are
    never output.
    """

    def __init__(self) -> None:
        self._held = ""
        self._header = ""
        self._in_body = False
        self._channel = ""

    @property
    def answering(self) -> bool:
        return self._in_body and self._channel == "final"

    def feed(self, text: str) -> tuple[str, str]:
        self._held += text
        thinking: list[str] = []
        answer: list[str] = []
        while self._step(thinking, answer):
            pass
        return "".join(thinking), "".join(answer)

    def flush(self) -> tuple[str, str]:
        held, self._held = self._held, ""
        if not self._in_body:  # an unfinished header says nothing; text with no markers is the answer
            return "", "" if "<|" in held else held
        return (held, "") if self._channel == "analysis" else ("", held)

    def _step(self, thinking: list[str], answer: list[str]) -> bool:
        if not self._in_body:
            at = self._held.find(_MESSAGE)
            if at < 0:
                return False
            self._header += self._held[:at]
            self._held = self._held[at + len(_MESSAGE) :]
            channel = self._header.split(_CHANNEL, 1)[1] if _CHANNEL in self._header else ""
            self._channel = (channel.split() or [""])[0].split("<|", 1)[0]
            self._header, self._in_body = "", True
            return True
        out = thinking if self._channel == "analysis" else answer
        ends = [(i, end) for end in _ENDS if (i := self._held.find(end)) >= 0]
        if ends:
            at, end = min(ends)
            out.append(self._held[:at])
            self._held = self._held[at + len(end) :]
            self._in_body = False
            if self._held.startswith(_START):
                self._held = self._held[len(_START) :]
            return True
        keep = max((partial_suffix(self._held, end) for end in _ENDS), default=0)
        out.append(self._held[: len(self._held) - keep])
        self._held = self._held[len(self._held) - keep :]
        return False


def partial_suffix(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that begins ``marker`` (0 if none)."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:n]):
            return n
    return 0
