"""The prefix cache on SmolLM2-135M: states kept in host memory when a slot is taken by another
prompt and restored for a returning one, shared prefixes copied between running sequences,
and the same greedy text as a cold start either way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from vllama.prefix_cache import common_prefix, tokens_of
from vllama.types import ChatRequest, Hardware, LoadSettings, Message, ModelRef, PrefixCacheStats, SamplingOptions
from vllama_llamacpp.backend import LlamaCppBackend
from vllama_llamacpp.engine import LlamaCppEngine

from .test_llamacpp_generation import collect

pytestmark = pytest.mark.engine

#: Two slots, so that a third conversation takes the cells of an earlier one.
SETTINGS = LoadSettings(num_ctx=1024, parallel=2, num_thread=1)


def conversation(topic: str, question: str) -> ChatRequest:
    system = f"You are a guide to {topic}. " + f"Answer questions about {topic} in one short sentence. " * 12
    return ChatRequest(
        messages=[Message(role="system", content=system), Message(role="user", content=question)],
        options=SamplingOptions(temperature=0, num_predict=24),
    )


async def aload(ref: ModelRef, hardware: Hardware, settings: LoadSettings = SETTINGS) -> LlamaCppEngine:
    engine = await LlamaCppBackend.load(ref, hardware, settings)
    assert isinstance(engine, LlamaCppEngine)
    return engine


@pytest.fixture
async def fresh(smollm2: ModelRef, hardware: Hardware) -> AsyncIterator[LlamaCppEngine]:
    """An engine with nothing cached, loaded for one test."""
    eng = await aload(smollm2, hardware)
    yield eng
    await eng.close()


async def cold_answer(smollm2: ModelRef, hardware: Hardware, request: ChatRequest) -> str:
    """The reply of an engine that has seen nothing before."""
    eng = await aload(smollm2, hardware)
    try:
        return (await collect(eng.chat(request)))[0]
    finally:
        await eng.close()


def stats(engine: LlamaCppEngine) -> PrefixCacheStats:
    cache = engine.info().prefix_cache
    assert cache is not None
    return cache


async def test_a_returning_conversation_is_restored_from_host_memory(fresh: LlamaCppEngine, smollm2: ModelRef, hardware: Hardware) -> None:
    paris = conversation("French geography", "What is the capital of France?")
    cold_text, _, cold = await collect(fresh.chat(paris))
    for topic in ("Italian food", "Norwegian fjords"):  # both slots now hold other prompts
        await collect(fresh.chat(conversation(topic, "Where should I start?")))
    before = stats(fresh)
    assert before.entries >= 1 and before.bytes > 0 and before.restores == 0
    warm_text, _, warm = await collect(fresh.chat(paris))
    after = stats(fresh)
    assert after.restores == 1 and after.hits == before.hits + 1
    assert after.tokens_saved - before.tokens_saved == warm.prompt_tokens - 1
    assert warm.prompt_eval_ns < cold.prompt_eval_ns / 2
    assert warm_text == cold_text == await cold_answer(smollm2, hardware, paris)


async def test_a_shared_prefix_is_computed_once_for_running_sequences(fresh: LlamaCppEngine, smollm2: ModelRef, hardware: Hardware) -> None:
    requests = [conversation("Norwegian fjords", q) for q in ("Which is the longest?", "When should I visit?")]
    results = await asyncio.gather(*(collect(fresh.chat(r)) for r in requests))
    cache = stats(fresh)
    assert cache.copies == 1
    prompts = [tokens_of(fresh.chat_prompt(r)) for r in requests]
    assert cache.tokens_saved == common_prefix(*prompts) > 150
    # the copy holds what the second prompt would find of the first in its own slot afterwards
    # (a prompt computed in two parts may round differently from one computed whole)
    one_after_the_other = await aload(smollm2, hardware)
    try:
        in_turn = [(await collect(one_after_the_other.chat(r)))[0] for r in requests]
        assert stats(one_after_the_other).copies == 0
    finally:
        await one_after_the_other.close()
    assert [text for text, _, _ in results] == in_turn


async def test_no_host_memory_with_a_zero_budget(smollm2: ModelRef, hardware: Hardware) -> None:
    eng = await aload(smollm2, hardware, LoadSettings(num_ctx=1024, parallel=1, num_thread=1, engine={"prefix_cache_mb": 0}))
    try:
        requests = [conversation(topic, "Where should I start?") for topic in ("French geography", "Italian food", "French geography")]
        for request in requests:
            await collect(eng.chat(request))
        cache = stats(eng)
        assert (cache.entries, cache.bytes, cache.restores, cache.budget_bytes) == (0, 0, 0, 0)
        prompts = [tokens_of(eng.chat_prompt(r)) for r in requests]
        # only the slot's cells serve: the template's opening, which each prompt shares with the last
        assert cache.tokens_saved == common_prefix(prompts[0], prompts[1]) + common_prefix(prompts[1], prompts[2]) < 20
    finally:
        await eng.close()


async def test_a_sharer_whose_source_is_cancelled_prefills_alone(fresh: LlamaCppEngine, smollm2: ModelRef, hardware: Hardware) -> None:
    source = fresh.chat(conversation("Icelandic volcanoes", "Which one erupted last?"))
    sharer_request = conversation("Icelandic volcanoes", "Are they dangerous?")
    started = asyncio.create_task(anext(source))
    await asyncio.sleep(0)  # the source is admitted first
    sharer = asyncio.create_task(collect(fresh.chat(sharer_request)))
    await asyncio.sleep(0)
    started.cancel()  # while it prefills, most likely: the sharer then computes the prefix itself
    with pytest.raises(asyncio.CancelledError):
        await started
    await source.aclose()
    text, _, done = await sharer
    assert done.completion_tokens > 0
    assert text == await cold_answer(smollm2, hardware, sharer_request)
    assert fresh.active_sequences == 0
