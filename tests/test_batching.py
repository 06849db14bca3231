"""The batch-loop toolkit on a fake engine: letters for tokens, a step that asks a script."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import pytest

from vllama.batching import (
    BatchEngine,
    BatchLoop,
    Sequence,
    top_logprobs,
)
from vllama.chat_inputs import generate_messages
from vllama.errors import ContextOverflow, EngineError
from vllama.testing.conformance import collect
from vllama.thinking import Tags
from vllama.types import (
    ChatRequest,
    Delta,
    Done,
    EngineInfo,
    GenerateRequest,
    LoadSettings,
    Message,
    ModelRef,
    SamplingOptions,
    TokenLogprob,
)

#: The fake end-of-generation token.
END = 99


class Letters(Sequence):
    """Token n is the letter chr(97 + n)."""

    def __init__(self, prompt: list[int], **kwargs: Any) -> None:
        super().__init__(prompt, **kwargs)
        self.freed = 0

    def detokenize(self, token: int) -> str:
        return chr(97 + token)

    def free(self) -> None:
        self.freed += 1


Script = Callable[[Letters], int]


def alphabet(seq: Letters) -> int:
    return len(seq.generated) % 26


class FakeLoop(BatchLoop[Letters]):
    """``slots`` ids, lowest first; each step gives every running sequence ``script(seq)``."""

    label = "fake"

    def __init__(self, script: Script = alphabet, *, slots: int = 2, delay: float = 0.0) -> None:
        super().__init__(name="fake-batch")
        self.script = script
        self.delay = delay
        self.free_ids = list(range(slots))
        self.left: list[tuple[int, bool]] = []
        self.batches: list[list[int]] = []
        self.recovered = 0
        self.torn_down_on: str | None = None
        self.fail_admit = False

    def has_room(self) -> bool:
        return bool(self.free_ids)

    def admit(self, seq: Letters) -> None:
        if self.fail_admit:
            raise RuntimeError("no room at the inn")
        seq.id = self.free_ids.pop(0)
        seq.started()

    def step(self) -> None:
        time.sleep(self.delay)
        self.batches.append([s.id for s in self.running])
        for seq in self.running:
            token = self.script(seq)
            seq.accept(token, TokenLogprob(token=chr(97 + token % 26), logprob=-1.0), end=token == END)

    def on_leave(self, seq: Letters, *, keep_cache: bool) -> None:
        self.left.append((seq.id, keep_cache))
        bisect.insort(self.free_ids, seq.id)

    def recover(self) -> None:
        self.recovered += 1

    def teardown(self) -> None:
        self.torn_down_on = threading.current_thread().name


class FakeEngine(BatchEngine[Letters]):
    loop: FakeLoop

    def __init__(self, loop: FakeLoop) -> None:
        super().__init__(ModelRef(name="fake", format="gguf", path=""), LoadSettings(num_ctx=8, parallel=2))
        self.loop = loop
        loop.start()

    def generate_prompt(self, request: GenerateRequest) -> list[int]:
        return [ord(c) - 97 for c in request.prompt]

    def chat_prompt(self, request: ChatRequest) -> list[int]:
        return [ord(c) - 97 for m in request.messages for c in m.content]

    def prompt_text(self, tokens: list[int]) -> str:
        return "".join(chr(t + 97) for t in tokens)

    def sequence(self, prompt: list[int], request: GenerateRequest | ChatRequest) -> Letters:
        options = request.options
        seq = Letters(prompt, max_tokens=options.num_predict, stop=options.stop, top_logprobs=top_logprobs(request))
        if options.num_predict == -3:  # this test engine's "nothing to run"
            seq.finish("length")
        return seq

    def info(self) -> EngineInfo:
        return self.engine_info(100, on_device=False, info={"fake.bytes": 100})

    async def close(self) -> None:
        await asyncio.to_thread(self.loop.stop)


@contextlib.asynccontextmanager
async def engine(script: Script = alphabet, **kwargs: Any) -> AsyncIterator[FakeEngine]:
    eng = FakeEngine(FakeLoop(script, **kwargs))
    try:
        yield eng
    finally:
        await eng.close()


def ask(prompt: str = "hi", **options: Any) -> GenerateRequest:
    return GenerateRequest(prompt=prompt, options=SamplingOptions(**options))


async def test_a_reply_streams_its_text_then_done() -> None:
    async with engine() as eng:
        text, deltas, done = await collect(eng.generate(ask(num_predict=5)))
    assert text == "abcde" and len(deltas) == 5
    assert (done.reason, done.prompt_tokens, done.completion_tokens) == ("length", 2, 5)
    assert done.context == [7, 8, 0, 1, 2, 3, 4]
    assert done.eval_ns > 0 and done.prompt_eval_ns > 0
    assert eng.loop.left == [(0, True)], "a finished sequence leaves with its cache kept"
    assert eng.active_sequences == 0


async def test_an_end_token_stops_without_being_output() -> None:
    async with engine(lambda s: END if len(s.generated) == 3 else 1) as eng:
        text, _, done = await collect(eng.generate(ask()))
    assert (text, done.reason, done.completion_tokens) == ("bbb", "stop", 3)


async def test_a_stop_string_cuts_the_text_and_its_logprob() -> None:
    async with engine() as eng:
        request = ask(stop=["cd"])
        request.logprobs = True
        text, deltas, done = await collect(eng.generate(request))
    assert (text, done.reason) == ("ab", "stop")
    assert "d" not in [lp.token for d in deltas for lp in d.logprobs], "the token that completed it is not output"


async def test_max_tokens_zero_evaluates_the_prompt_only() -> None:
    async with engine() as eng:
        text, deltas, done = await collect(eng.generate(ask(num_predict=0)))
    assert (text, deltas, done.reason, done.completion_tokens) == ("", [], "length", 0)


async def test_a_sequence_finished_before_it_runs_is_never_submitted() -> None:
    async with engine() as eng:
        _, _, done = await collect(eng.generate(ask("abc", num_predict=-3)))
        assert (done.reason, done.context, eng.loop.batches) == ("length", [0, 1, 2], [])


async def test_empty_and_oversized_prompts() -> None:
    async with engine() as eng:
        _, _, done = await collect(eng.generate(ask("")))
        assert done.reason == "stop" and done.prompt_tokens == 0
        with pytest.raises(ContextOverflow, match="exceeds the context length"):
            await collect(eng.generate(ask("abcdefghi")))


async def test_more_sequences_than_room_wait_and_run_in_id_order() -> None:
    async with engine(slots=2) as eng:
        results = await asyncio.gather(*(collect(eng.generate(ask(num_predict=3))) for _ in range(5)))
        assert [r[0] for r in results] == ["abc"] * 5
        assert all(len(b) <= 2 and b == sorted(b) for b in eng.loop.batches)
        assert eng.active_sequences == 0 and eng.loop.free_ids == [0, 1]


async def test_a_consumer_that_leaves_cancels_its_sequence() -> None:
    async with engine(delay=0.002) as eng:
        stream = eng.generate(ask())
        assert isinstance(stream, AsyncGenerator)
        assert isinstance(await anext(stream), Delta)
        assert eng.active_sequences == 1
        await stream.aclose()  # returns once the loop has released it
        assert eng.active_sequences == 0
        assert eng.loop.left == [(0, False)], "a cancelled sequence leaves without its cache"


async def test_a_failing_step_fails_every_sequence_and_the_loop_goes_on() -> None:
    broken = threading.Event()

    def script(seq: Letters) -> int:
        if len(loop.running) == 2 and not broken.is_set():
            broken.set()
            raise RuntimeError("boom")
        return 0

    loop = FakeLoop(script, delay=0.002)
    eng = FakeEngine(loop)
    results = await asyncio.gather(*(collect(eng.generate(ask())) for _ in range(2)), return_exceptions=True)
    assert all(isinstance(r, EngineError) and str(r) == "fake engine error: boom" for r in results)
    assert loop.recovered == 1 and eng.active_sequences == 0
    assert sorted(loop.left) == [(0, False), (1, False)]
    assert (await collect(eng.generate(ask(num_predict=2))))[0] == "aa"
    await eng.close()


async def test_a_sequence_that_cannot_start_fails_alone() -> None:
    async with engine() as eng:
        eng.loop.fail_admit = True
        with pytest.raises(EngineError, match="fake engine error: no room at the inn"):
            await collect(eng.generate(ask()))
        eng.loop.fail_admit = False
        assert (await collect(eng.generate(ask(num_predict=1))))[0] == "a"


async def test_call_runs_on_the_loop_thread() -> None:
    async with engine() as eng:
        name = await asyncio.wrap_future(eng.loop.call(lambda: threading.current_thread().name))
        assert name == "fake-batch"
        with pytest.raises(ZeroDivisionError):
            await asyncio.wrap_future(eng.loop.call(lambda: 1 // 0))


async def test_stop_fails_what_is_left_and_frees_every_sequence() -> None:
    loop = FakeLoop(delay=0.002)
    eng = FakeEngine(loop)
    stream = eng.generate(ask())
    await anext(stream)
    seqs = list(loop.running)
    await eng.close()
    with pytest.raises(EngineError, match="the model was unloaded"):
        async for _ in stream:
            pass
    assert [s.freed for s in seqs] == [1], "freed once"
    assert loop.torn_down_on == "fake-batch"
    with pytest.raises(EngineError, match="being unloaded"):
        await collect(eng.generate(ask()))


def test_a_failed_setup_is_raised_by_start_and_refuses_work() -> None:
    class Broken(FakeLoop):
        def setup(self) -> None:
            raise OSError("no weights")

    loop = Broken()
    with pytest.raises(OSError, match="no weights"):
        loop.start()
    with pytest.raises(EngineError):
        loop.call(lambda: None)
    loop.stop()


def test_helpers() -> None:
    assert top_logprobs(GenerateRequest(prompt="x")) is None
    assert top_logprobs(GenerateRequest(prompt="x", logprobs=True)) == 0
    assert top_logprobs(GenerateRequest(prompt="x", top_logprobs=3)) == 3
    assert generate_messages(GenerateRequest(prompt="q")) == [Message(role="user", content="q")]
    assert [m.content for m in generate_messages(GenerateRequest(prompt="q", system="mine"))] == ["mine", "q"]


async def test_done_is_the_last_event_and_info_is_the_engines() -> None:
    async with engine() as eng:
        events = [e async for e in eng.generate(ask(num_predict=3))]
        info = eng.info()
    assert isinstance(events[-1], Done) and not any(isinstance(e, Done) for e in events[:-1])
    assert (info.size, info.size_vram, info.context_length, info.parallel) == (100, 0, 8, 2)
    assert (eng.name, info.info) == ("fake", {"fake.bytes": 100})


async def test_a_reply_that_thinks_is_split_where_the_prompt_left_it() -> None:
    async with engine() as eng:
        eng.thinking_format = Tags("hi", "cd")  # letters only: the prompt "hi" opens it, "cd" closes it
        thinking_request = ask("hi", num_predict=7)
        thinking_request.think = True
        _, deltas, done = await collect(eng.generate(thinking_request))
        assert ("".join(d.thinking for d in deltas), "".join(d.text for d in deltas)) == ("ab", "efg")
        assert done.completion_tokens == 7
        text, deltas, _ = await collect(eng.generate(ask("hi", num_predict=7)))  # think unset: text stays text
        assert text == "abcdefg" and not any(d.thinking for d in deltas)
        outside = ask("xx", num_predict=7)
        outside.think = True
        text, deltas, _ = await collect(eng.generate(outside))  # the prompt did not open it, nor did the reply
        assert text == "abcdefg" and not any(d.thinking for d in deltas)
