"""Generation through a real engine on SmolLM2-135M: chat, streaming, sampling, batching."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator

import pytest

from vllama.errors import BadRequest, ContextOverflow
from vllama.types import ChatRequest, Delta, Done, Event, GenerateRequest, Message, SamplingOptions
from vllama_llamacpp.engine import LlamaCppEngine

pytestmark = pytest.mark.engine

GREEDY = SamplingOptions(temperature=0, num_predict=32)
SYSTEM = Message(role="system", content="You are a helpful assistant.")


def ask(question: str, **options: object) -> ChatRequest:
    opts = SamplingOptions(**{"temperature": 0, "num_predict": 32, **options})
    return ChatRequest(messages=[SYSTEM, Message(role="user", content=question)], options=opts)


async def collect(stream: AsyncIterator[Event]) -> tuple[str, list[Delta], Done]:
    deltas: list[Delta] = []
    done = None
    async for event in stream:
        assert done is None, "nothing may follow Done"
        if isinstance(event, Delta):
            deltas.append(event)
        else:
            done = event
    assert done is not None
    return "".join(d.text for d in deltas), deltas, done


async def test_chat_answers_greedily(engine: LlamaCppEngine) -> None:
    text, _, done = await collect(engine.chat(ask("What is the capital of France?")))
    assert "Paris" in text
    assert done.reason == "stop"


async def test_generate_raw_continues_the_prompt(engine: LlamaCppEngine) -> None:
    request = GenerateRequest(prompt="The days of the week are Monday, Tuesday,", raw=True, options=GREEDY)
    text, _, _ = await collect(engine.generate(request))
    assert "Wednesday" in text


async def test_generate_wraps_the_prompt_in_the_template(engine: LlamaCppEngine) -> None:
    request = GenerateRequest(prompt="What is the capital of France?", system="You are a helpful assistant.", options=GREEDY)
    text, _, _ = await collect(engine.generate(request))
    assert "Paris" in text


async def test_stream_then_done_with_counts(engine: LlamaCppEngine) -> None:
    request = GenerateRequest(prompt="Count: one, two, three,", raw=True, options=GREEDY)
    text, deltas, done = await collect(engine.generate(request))
    assert len(deltas) > 3
    assert done.completion_tokens >= len(deltas)
    assert done.prompt_tokens > 0
    assert len(done.context) == done.prompt_tokens + done.completion_tokens
    assert done.prompt_eval_ns > 0 and done.eval_ns > 0
    assert text


async def test_num_predict_cuts_with_length(engine: LlamaCppEngine) -> None:
    request = GenerateRequest(prompt="Write a long story about a dragon.", options=SamplingOptions(temperature=0, num_predict=5))
    _, _, done = await collect(engine.generate(request))
    assert (done.reason, done.completion_tokens) == ("length", 5)


async def test_stop_string_is_not_emitted(engine: LlamaCppEngine) -> None:
    full, _, _ = await collect(engine.chat(ask("What is the capital of France?")))
    assert "France is" in full
    text, _, done = await collect(engine.chat(ask("What is the capital of France?", stop=["France is"])))
    assert text == full[: full.index("France is")]
    assert done.reason == "stop"


async def test_same_seed_same_text(engine: LlamaCppEngine) -> None:
    options = SamplingOptions(temperature=0.8, seed=1234, num_predict=24)
    request = GenerateRequest(prompt="Tell me about cats.", options=options)
    first, _, _ = await collect(engine.generate(request))
    second, _, _ = await collect(engine.generate(request))
    assert first and first == second


async def test_format_json(engine: LlamaCppEngine) -> None:
    request = ask("Describe a cat as a JSON object with a name and an age.", num_predict=96)
    request.format = "json"
    text, _, done = await collect(engine.chat(request))
    assert done.reason == "stop"
    assert isinstance(json.loads(text), dict)


async def test_format_json_schema(engine: LlamaCppEngine) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "country": {"type": "string", "maxLength": 20},
        },
        "required": ["city", "country"],
    }
    request = ask("What is the capital of France? Answer in JSON.", num_predict=64)
    request.format = schema
    text, _, _ = await collect(engine.chat(request))
    assert set(json.loads(text)) == {"city", "country"}


async def test_invalid_schema_is_a_bad_request(engine: LlamaCppEngine) -> None:
    request = ask("Hi")
    request.format = {"type": "frob"}
    with pytest.raises(BadRequest, match="invalid JSON schema"):
        await anext(engine.chat(request))
    assert engine.active_sequences == 0


async def test_logprobs(engine: LlamaCppEngine) -> None:
    request = ask("What is the capital of France?", num_predict=8)
    request.logprobs, request.top_logprobs = True, 3
    text, deltas, done = await collect(engine.chat(request))
    logprobs = [lp for d in deltas for lp in d.logprobs]
    assert len(logprobs) == done.completion_tokens
    assert "".join(lp.token for lp in logprobs) == text
    for lp in logprobs:
        assert lp.logprob <= 0
        assert len(lp.top_logprobs) == 3
        assert lp.top_logprobs[0].logprob >= lp.logprob - 1e-4  # greedy: the sampled token is the top one
        assert bytes(lp.bytes).decode() == lp.token


PROMPTS = [
    "The capital of France is",
    "Write a poem.",
    "Once upon a time, there was",
    "The best way to learn to cook is",
]


async def test_concurrent_streams_interleave_and_match(engine: LlamaCppEngine) -> None:
    options = SamplingOptions(temperature=0, num_predict=16)
    requests = [GenerateRequest(prompt=p, raw=True, options=options) for p in PROMPTS]
    alone = [(await collect(engine.generate(r)))[0] for r in requests]

    arrivals: list[list[float]] = [[] for _ in requests]
    finished: list[float] = [0.0] * len(requests)

    async def run(i: int) -> str:
        text = ""
        async for event in engine.generate(requests[i]):
            if isinstance(event, Delta):
                arrivals[i].append(time.monotonic())
                text += event.text
            else:
                finished[i] = time.monotonic()
        return text

    together = await asyncio.gather(*(run(i) for i in range(len(requests))))
    first_done = min(finished)
    assert all(times and times[0] < first_done for times in arrivals)
    assert together == alone


async def test_the_greedy_fast_path_picks_what_llama_cpps_greedy_sampler_picks(
    engine: LlamaCppEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llama_cpp as lc

    import vllama_llamacpp.engine as engine_module
    from vllama_llamacpp.sampling import build_chain

    assert build_chain(engine._model, GREEDY, None) is None, "plain greedy takes the argmax path"
    requests = [GenerateRequest(prompt=p, raw=True, options=GREEDY) for p in PROMPTS[:2]]
    fast = [(await collect(engine.generate(r)))[0] for r in requests]

    def greedy_chain(*_: object) -> object:
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        return chain

    monkeypatch.setattr(engine_module, "build_chain", greedy_chain)
    sampled = [(await collect(engine.generate(r)))[0] for r in requests]
    assert fast == sampled and all(fast)


async def test_new_sequences_take_the_lowest_free_slot_and_run_in_slot_order(engine: LlamaCppEngine) -> None:
    options = SamplingOptions(temperature=0, num_predict=64)
    # first words no other test uses, so that no cached prefix draws a sequence to another slot
    prompts = ["Zanzibar is", "Quokkas are", "Xylophones sound", "Marzipan tastes"]
    streams = [engine.generate(GenerateRequest(prompt=p, raw=True, options=options)) for p in prompts[:3]]
    for s in streams:
        await anext(s)
    await streams[1].aclose()
    late = engine.generate(GenerateRequest(prompt=prompts[3], raw=True, options=options))
    await anext(late)
    slots = [seq.id for seq in engine.loop.running]
    assert slots == [0, 1, 2], "the freed slot 1 is reused and the batch stays in slot order"
    for s in (streams[0], streams[2], late):
        await s.aclose()
    assert engine.active_sequences == 0


async def test_cancelling_a_stream_frees_its_sequence(engine: LlamaCppEngine) -> None:
    options = SamplingOptions(temperature=0, num_predict=48)
    streams = [engine.generate(GenerateRequest(prompt=p, raw=True, options=options)) for p in PROMPTS[:3]]
    # start all three, then stop reading the first one after a few tokens
    firsts = [await anext(s) for s in streams]
    assert all(isinstance(e, Delta) for e in firsts)
    assert engine.active_sequences == 3
    for _ in range(3):
        await anext(streams[0])
    await streams[0].aclose()
    assert engine.active_sequences == 2
    results = await asyncio.gather(*(collect(s) for s in streams[1:]))
    assert all(done.completion_tokens == 48 for _, _, done in results)
    assert engine.active_sequences == 0


async def test_task_cancellation_frees_its_sequence(engine: LlamaCppEngine) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        request = GenerateRequest(prompt="Write a poem.", options=SamplingOptions(num_predict=200))
        async for _ in engine.generate(request):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.active_sequences == 0


async def test_context_overflow_is_raised_before_any_event(engine: LlamaCppEngine) -> None:
    request = GenerateRequest(prompt="word " * 1500, raw=True, options=GREEDY)
    with pytest.raises(ContextOverflow, match="exceeds the context length"):
        await anext(engine.generate(request))
    _, _, done = await collect(engine.generate(GenerateRequest(prompt="Hi", raw=True, options=GREEDY)))
    assert done.completion_tokens > 0


def test_info(engine: LlamaCppEngine) -> None:
    info = engine.info()
    assert info.context_length == 1024 and info.parallel == 4
    per_token = 30 * 3 * (64 + 64) * 2  # layers x KV heads x (K + V dims) x f16
    assert info.size > info.info["llama.cpp.kv_cache_bytes"] >= 1024 * 4 * per_token
    assert info.size_vram == 0


async def test_more_requests_than_slots_wait_their_turn(engine: LlamaCppEngine) -> None:
    options = SamplingOptions(temperature=0, num_predict=4)
    requests = [GenerateRequest(prompt=f"Item {i}:", raw=True, options=options) for i in range(6)]
    results = await asyncio.gather(*(collect(engine.generate(r)) for r in requests))
    assert [done.completion_tokens for _, _, done in results] == [4] * 6
    assert engine.active_sequences == 0


async def test_a_repeated_prefix_is_not_evaluated_again(engine: LlamaCppEngine) -> None:
    system = Message(role="system", content="You are a helpful assistant. " + "Always be concise and precise. " * 20)

    def request(question: str) -> ChatRequest:
        return ChatRequest(
            messages=[system, Message(role="user", content=question)],
            options=SamplingOptions(temperature=0, num_predict=12),
        )

    first, _, cold = await collect(engine.chat(request("What is the capital of France?")))
    _, _, other = await collect(engine.chat(request("Name a colour.")))
    again, _, warm = await collect(engine.chat(request("What is the capital of France?")))
    assert cold.prompt_tokens > 100
    assert other.prompt_eval_ns < cold.prompt_eval_ns / 2
    assert warm.prompt_eval_ns < cold.prompt_eval_ns / 2
    assert again == first


async def test_a_long_prompt_does_not_stall_running_streams(engine: LlamaCppEngine) -> None:
    options = SamplingOptions(temperature=0, num_predict=40)
    running = engine.generate(GenerateRequest(prompt="Write a poem.", raw=True, options=options))
    await anext(running)
    arrivals = [time.monotonic()]
    long = GenerateRequest(
        prompt="A list of fruits: " + "apple, pear, " * 60,
        raw=True,
        options=SamplingOptions(temperature=0, num_predict=4),
    )

    async def read_running() -> None:
        async for event in running:
            arrivals.append(time.monotonic())
            if isinstance(event, Done):
                return

    reader = asyncio.create_task(read_running())
    _, _, done = await collect(engine.generate(long))
    await reader
    assert done.prompt_tokens > 200
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # unchunked, one step would stall the stream for the whole prompt evaluation
    assert max(gaps) < done.prompt_eval_ns / 1e9 / 2, f"a step stalled the stream for {max(gaps):.2f}s"
