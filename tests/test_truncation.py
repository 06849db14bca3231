"""A chat longer than the context loses its oldest messages, keeping the system messages and
the last one, as Ollama's does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllama.errors import ContextOverflow
from vllama.truncation import fit, kept
from vllama.types import ChatRequest, Message

#: A toy template: each message costs its word count plus 2 tokens of markup.
TEMPLATE_COST = 2


def render(request: ChatRequest) -> list[str]:
    return [w for m in request.messages for w in ["<m>", *m.content.split(), "</m>"]]


messages = st.lists(
    st.builds(
        lambda role, n: Message(role=role, content=" ".join(["w"] * n)),
        st.sampled_from(["system", "user", "assistant", "tool"]),
        st.integers(0, 30),
    ),
    min_size=1,
    max_size=12,
)


@given(messages, st.integers(1, 200))
def test_what_is_kept_fits_and_is_the_most_that_fits(conversation: list[Message], limit: int) -> None:
    request = ChatRequest(messages=conversation)
    try:
        fitted = fit(request, render, len, limit)
    except ContextOverflow:
        last_and_systems = kept(conversation, len(conversation) - 1)
        assert len(render(ChatRequest(messages=last_and_systems))) > limit or len(conversation) < 2
        return
    assert len(fitted.prompt) <= limit
    if fitted.dropped == 0:
        assert fitted.prompt == render(request)
        return
    start = next(s for s in range(1, len(conversation)) if render(ChatRequest(messages=kept(conversation, s))) == fitted.prompt)
    assert fitted.dropped == len(conversation) - len(kept(conversation, start))
    assert len(render(ChatRequest(messages=kept(conversation, start - 1)))) > limit or start == 1
    # the system messages and the last message stay
    assert fitted.prompt[-len(render(ChatRequest(messages=conversation[-1:]))) :] == render(ChatRequest(messages=conversation[-1:]))
    systems = [m for m in conversation[:start] if m.role == "system"]
    assert fitted.prompt[: len(render(ChatRequest(messages=systems)))] == render(ChatRequest(messages=systems))


def test_a_long_chat_keeps_the_system_prompt_and_the_last_message() -> None:
    chat = [
        Message(role="system", content="be brief"),
        *(Message(role=r, content="x " * 20) for r in ("user", "assistant") * 5),
        Message(role="user", content="last question"),
    ]
    fitted = fit(ChatRequest(messages=chat), render, len, 60)
    assert fitted.prompt[:4] == ["<m>", "be", "brief", "</m>"] and fitted.prompt[-4:] == ["<m>", "last", "question", "</m>"]
    assert fitted.dropped == 8 and len(fitted.prompt) == 52  # 4 + 2 x 22 + 4: two turns of the ten fit


def test_truncate_false_is_an_error_and_a_short_chat_is_left_alone() -> None:
    chat = [Message(role="user", content="x " * 50), Message(role="user", content="y")]
    with pytest.raises(ContextOverflow, match="exceeds the context length"):
        fit(ChatRequest(messages=chat, truncate=False), render, len, 10)
    assert fit(ChatRequest(messages=chat), render, len, 10).dropped == 1
    assert fit(ChatRequest(messages=chat), render, len, 100).dropped == 0
    with pytest.raises(ContextOverflow):
        fit(ChatRequest(messages=[Message(role="user", content="x " * 50)]), render, len, 10)
