"""Prompt-lookup drafts on SmolLM2-135M: a reply that copies its prompt is confirmed several
tokens a step, and greedy replies are the same with drafts as without."""

from __future__ import annotations

import asyncio

import pytest

from vllama.types import ChatRequest, Hardware, LoadSettings, Message, ModelRef, SamplingOptions
from vllama_llamacpp.backend import LlamaCppBackend
from vllama_llamacpp.engine import LlamaCppEngine

from .test_llamacpp_generation import collect

pytestmark = pytest.mark.engine

PANGRAMS = (
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. "
    "How vexingly quick daft zebras jump. Sphinx of black quartz, judge my vow."
)


def request(content: str, **options: object) -> ChatRequest:
    opts = SamplingOptions(**{"temperature": 0, "num_predict": 48, **options})
    return ChatRequest(messages=[Message(role="user", content=content)], options=opts)


async def replies(smollm2: ModelRef, hardware: Hardware, draft_tokens: int, requests: list[ChatRequest]) -> tuple[list[str], dict]:
    """The replies to ``requests``, sent together, and the engine's draft counters."""
    settings = LoadSettings(num_ctx=1024, parallel=2, num_thread=1, engine={"draft_tokens": draft_tokens})
    engine = await LlamaCppBackend.load(smollm2, hardware, settings)
    assert isinstance(engine, LlamaCppEngine)
    try:
        results = await asyncio.gather(*(collect(engine.chat(r)) for r in requests))
        return [text for text, _, _ in results], engine.info().info
    finally:
        await engine.close()


async def test_a_copying_reply_is_the_same_with_drafts_and_most_are_confirmed(smollm2: ModelRef, hardware: Hardware) -> None:
    copy = request(f"Repeat this text exactly:\n\n{PANGRAMS}")
    plain, off = await replies(smollm2, hardware, 0, [copy])
    drafted, on = await replies(smollm2, hardware, 8, [copy])
    assert drafted == plain and PANGRAMS[-20:] in plain[0]
    assert off["llama.cpp.draft_tokens"] == 0
    assert on["llama.cpp.draft_tokens_accepted"] >= 30
    assert on["llama.cpp.draft_tokens_accepted"] <= on["llama.cpp.draft_tokens"]


async def test_drafting_sequences_batched_together_give_their_own_replies(smollm2: ModelRef, hardware: Hardware) -> None:
    together = [
        request(f"Repeat this text exactly:\n\n{PANGRAMS}"),
        request("Write the numbers from one to twenty in words, separated by commas.", num_predict=40),
    ]
    plain, _ = await replies(smollm2, hardware, 0, together)
    drafted, on = await replies(smollm2, hardware, 6, together)
    assert drafted == plain
    assert on["llama.cpp.draft_tokens"] > 0


async def test_sampled_and_short_replies_draft_nothing(smollm2: ModelRef, hardware: Hardware) -> None:
    sampled = request(f"Repeat this text exactly:\n\n{PANGRAMS}", temperature=0.7, seed=1)
    one = request(f"Repeat this text exactly:\n\n{PANGRAMS}", num_predict=1)
    texts, info = await replies(smollm2, hardware, 8, [sampled, one])
    assert all(texts) and info["llama.cpp.draft_tokens"] == 0
