"""Admission decides from the backend's answer for the one model: a backend may serve a model
with less than its class-level capabilities (vLLM: a generator or an embedder)."""

from __future__ import annotations

import pytest

from vllama import admission
from vllama.engine import Support
from vllama.errors import Unsupported
from vllama.selection import Candidate
from vllama.testing.echo import EchoBackend
from vllama.types import ChatRequest, Message, ModelRef, Tool, ToolFunction

GENERATOR = ModelRef(name="gen:latest", format="gguf", path="", capabilities=["completion", "tools"])
EMBEDDER = ModelRef(name="emb:latest", format="gguf", path="", capabilities=["embedding"])


def serving(narrowed: frozenset[str] | None) -> Candidate:
    return Candidate(EchoBackend, Support(score=1, capabilities=narrowed))


def test_without_narrowing_the_backends_capabilities_apply() -> None:
    assert admission.capabilities(GENERATOR, serving(None)) == ["completion", "tools"]
    admission.check_embed(GENERATOR, serving(None))  # the echo backend embeds any model


def test_a_narrowed_answer_is_what_show_lists_and_what_requests_may_use() -> None:
    only_chat = serving(frozenset({"completion", "chat"}))
    assert admission.capabilities(GENERATOR, only_chat) == ["completion"]
    tools = [Tool(function=ToolFunction(name="get_time"))]
    with pytest.raises(Unsupported, match='"gen:latest" does not support tools with the echo backend'):
        admission.check(GENERATOR, only_chat, ChatRequest(messages=[Message(role="user", content="hi")], tools=tools))
    with pytest.raises(Unsupported, match="does not support embeddings with the echo backend"):
        admission.check_embed(GENERATOR, only_chat)


def test_narrowing_never_adds_what_the_backend_lacks() -> None:
    wider = serving(frozenset({"completion", "chat", "vision"}))
    assert "vision" not in wider.capabilities
    assert admission.capabilities(EMBEDDER, serving(frozenset({"embedding"}))) == ["embedding"]
