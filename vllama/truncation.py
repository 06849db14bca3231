"""A chat longer than the context, cut as Ollama cuts it: the oldest messages go first, the
system messages and the last message stay. Engines render with their own template and
tokenizer; the rule is here, once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

from vllama.errors import ContextOverflow
from vllama.types import ChatRequest, Message

log = logging.getLogger("vllama.truncation")

P = TypeVar("P")

OVERFLOW = "the input length exceeds the context length"


@dataclass(frozen=True)
class Fitted(Generic[P]):
    """The rendered prompt that fits, and how many messages were left out to fit it."""

    prompt: P
    dropped: int = 0


def kept(messages: list[Message], start: int) -> list[Message]:
    """The conversation from ``messages[start]`` on, after the system messages before it."""
    return [m for m in messages[:start] if m.role == "system"] + messages[start:]


def fit(request: ChatRequest, render: Callable[[ChatRequest], P], size: Callable[[P], int], limit: int) -> Fitted[P]:
    """``request`` rendered (by ``render``, whose prompt is ``size`` tokens long) in at most
    ``limit`` tokens. A longer one, where ``request.truncate`` allows, loses its oldest
    messages (the system messages and the last message stay) until it fits, as in Ollama;
    else, or when even that is too long, :class:`~vllama.errors.ContextOverflow`."""
    prompt = render(request)
    if size(prompt) <= limit:
        return Fitted(prompt)
    messages = request.messages
    if not request.truncate or len(messages) < 2:
        raise ContextOverflow(OVERFLOW)

    def attempt(start: int) -> P:
        return render(msgspec.structs.replace(request, messages=kept(messages, start)))

    # The smallest start whose rendering fits: fewer messages, fewer tokens.
    low, high, best = 1, len(messages) - 1, None
    while low <= high:
        middle = (low + high) // 2
        candidate = attempt(middle)
        if size(candidate) <= limit:
            best, high = (middle, candidate), middle - 1
        else:
            low = middle + 1
    if best is None:
        raise ContextOverflow(OVERFLOW)
    start, prompt = best
    dropped = len(messages) - len(kept(messages, start))
    log.info(
        "the chat is longer than the context (%d tokens): left out its %d oldest messages, kept %d tokens", limit, dropped, size(prompt)
    )
    return Fitted(prompt, dropped)
