"""The backend conformance suite: every backend runs it against a real model.

Subclass :class:`BackendConformance` in a test module of your backend package and override
the ``backend`` and ``model`` fixtures (and ``embedding_model`` if the backend embeds)::

    class TestMyBackend(BackendConformance):
        @pytest.fixture(scope="class")
        def backend(self):
            return MyBackend

        @pytest.fixture(scope="class")
        def model(self, tmp_path_factory):
            return ModelRef(name="smollm2:135m", format="gguf", path=..., info=...)

Tests that need a capability the backend does not declare are skipped, so the suite says
exactly what a backend supports. The engine is loaded as the server loads it: in a worker
process when the backend is ``isolated``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from vllama.engine import Backend, Engine
from vllama.errors import ContextOverflow
from vllama.probes import cpu_device
from vllama.types import (
    ChatRequest,
    Delta,
    Done,
    EmbedRequest,
    EventStream,
    GenerateRequest,
    Hardware,
    LoadSettings,
    Message,
    ModelRef,
    SamplingOptions,
)
from vllama.worker import WorkerEngine

GREEDY = SamplingOptions(temperature=0.0, num_predict=24)


async def collect(events: EventStream) -> tuple[str, list[Delta], Done]:
    deltas, done = [], None
    async for event in events:
        assert done is None, "no event may follow Done"
        if isinstance(event, Done):
            done = event
        else:
            deltas.append(event)
    assert done is not None, "every stream ends with Done"
    return "".join(d.text for d in deltas), deltas, done


def user(text: str) -> list[Message]:
    """One user turn, after a plain system prompt (some templates add a persona otherwise)."""
    return [Message(role="system", content="You are a helpful assistant."), Message(role="user", content=text)]


@pytest.mark.asyncio(loop_scope="class")
class BackendConformance:
    """What every backend must do. Override the fixtures below."""

    #: Ask, and a word the greedy answer must contain.
    question = "What is the capital of France?"
    answer = "Paris"

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> type[Backend]:
        raise NotImplementedError("override the backend fixture")

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls) -> ModelRef:
        raise NotImplementedError("override the model fixture")

    @pytest.fixture(scope="class")
    @classmethod
    def hardware(cls) -> Hardware:
        return Hardware(devices=(cpu_device(),))

    @pytest.fixture(scope="class")
    @classmethod
    def settings(cls) -> LoadSettings:
        return LoadSettings(num_ctx=512, parallel=4, num_thread=1)

    @pytest_asyncio.fixture(scope="class", loop_scope="class")
    @classmethod
    async def engine(cls, backend: type[Backend], model: ModelRef, hardware: Hardware, settings: LoadSettings) -> AsyncIterator[Engine]:
        if backend.isolated:
            engine: Engine = await WorkerEngine.start(backend, model, hardware, settings)
        else:
            engine = await backend.load(model, hardware, settings)
        try:
            yield engine
        finally:
            await engine.close()

    def needs(self, backend: type[Backend], capability: str) -> None:
        if capability not in backend.capabilities:
            pytest.skip(f"{backend.name} does not declare {capability!r}")

    # -- selection ------------------------------------------------------------------------

    async def test_supports_its_model(self, backend: type[Backend], model: ModelRef, hardware: Hardware) -> None:
        support = backend.supports(model, hardware)
        assert support is not None and support.score > 0 and support.parallel >= 1
        assert model.format in backend.formats

    async def test_info(self, engine: Engine, settings: LoadSettings) -> None:
        info = engine.info()
        assert info.size > 0
        assert info.context_length == settings.num_ctx

    # -- generation ------------------------------------------------------------------------

    async def test_chat_answers(self, backend: type[Backend], engine: Engine) -> None:
        self.needs(backend, "chat")
        text, deltas, done = await collect(engine.chat(ChatRequest(messages=user(self.question), options=GREEDY)))
        assert self.answer in text
        assert len(deltas) > 1, "the reply must stream in pieces"
        assert done.prompt_tokens > 0 and done.completion_tokens > 0
        assert done.eval_ns > 0 and done.prompt_eval_ns > 0

    async def test_generate_raw(self, engine: Engine) -> None:
        text, _, done = await collect(engine.generate(GenerateRequest(prompt="1, 2, 3, 4,", raw=True, options=GREEDY)))
        assert text and done.completion_tokens > 0

    async def test_num_predict_cuts_with_length(self, engine: Engine) -> None:
        options = SamplingOptions(temperature=0.0, num_predict=5)
        prompt = "Tell me a long story about a dragon, a knight and a castle by the sea."
        _, _, done = await collect(engine.generate(GenerateRequest(prompt=prompt, options=options)))
        assert done.reason == "length" and done.completion_tokens == 5

    async def test_stop_string_is_not_emitted(self, engine: Engine) -> None:
        text, _, _ = await collect(engine.chat(ChatRequest(messages=user(self.question), options=GREEDY)))
        words = text.split()
        assert len(words) >= 2
        stop = words[1]
        options = SamplingOptions(temperature=0.0, num_predict=24, stop=[stop])
        stopped, _, done = await collect(engine.chat(ChatRequest(messages=user(self.question), options=options)))
        assert stop not in stopped and done.reason == "stop"
        assert text.startswith(stopped.rstrip())

    async def test_same_seed_same_text(self, engine: Engine) -> None:
        options = SamplingOptions(temperature=0.9, seed=1234, num_predict=16)
        request = ChatRequest(messages=user("Write a short poem about the sea."), options=options)
        first, _, _ = await collect(engine.chat(request))
        second, _, _ = await collect(engine.chat(request))
        assert first == second

    async def test_context_overflow_is_an_error(self, engine: Engine, settings: LoadSettings) -> None:
        long_prompt = "word " * (settings.num_ctx * 2)
        with pytest.raises(ContextOverflow):
            await collect(engine.generate(GenerateRequest(prompt=long_prompt, raw=True, options=GREEDY)))

    async def test_format_json(self, backend: type[Backend], engine: Engine) -> None:
        self.needs(backend, "format")
        options = SamplingOptions(temperature=0.0, num_predict=48)
        request = ChatRequest(messages=user("Give the capital of France as JSON."), options=options, format="json")
        text, _, done = await collect(engine.chat(request))
        if done.reason == "stop":
            json.loads(text)
        else:
            assert text.lstrip().startswith("{")

    async def test_logprobs(self, backend: type[Backend], engine: Engine) -> None:
        self.needs(backend, "logprobs")
        request = ChatRequest(messages=user(self.question), options=GREEDY, logprobs=True, top_logprobs=3)
        _, deltas, _ = await collect(engine.chat(request))
        logprobs = [lp for d in deltas for lp in d.logprobs]
        assert logprobs and all(lp.logprob <= 0 for lp in logprobs)
        assert all(len(lp.top_logprobs) == 3 for lp in logprobs)

    # -- concurrency ------------------------------------------------------------------------

    async def test_concurrent_requests_interleave(self, engine: Engine, settings: LoadSettings) -> None:
        n = min(settings.parallel, 4)
        arrivals: list[tuple[float, int]] = []
        finished: list[float] = []

        async def run(i: int) -> str:
            options = SamplingOptions(temperature=0.0, num_predict=16)
            text = []
            async for event in engine.generate(GenerateRequest(prompt=f"Count from {i} to {i + 20}:", options=options)):
                if isinstance(event, Delta):
                    arrivals.append((time.monotonic(), i))
                    text.append(event.text)
            finished.append(time.monotonic())
            return "".join(text)

        texts = await asyncio.gather(*(run(i) for i in range(n)))
        first_done = min(finished)
        started_before = {i for t, i in arrivals if t < first_done}
        assert started_before == set(range(n)), "every stream must make progress before any finishes"
        alone = [
            (
                await collect(
                    engine.generate(
                        GenerateRequest(prompt=f"Count from {i} to {i + 20}:", options=SamplingOptions(temperature=0.0, num_predict=16))
                    )
                )
            )[0]
            for i in range(n)
        ]
        assert texts == alone, "batched greedy output must equal the output of each request alone"

    async def test_cancel_frees_the_sequence(self, engine: Engine, settings: LoadSettings) -> None:
        options = SamplingOptions(temperature=0.0, num_predict=64)

        async def partial() -> int:
            seen = 0
            stream = engine.generate(GenerateRequest(prompt="Tell me about the ocean.", options=options))
            async for event in stream:
                seen += isinstance(event, Delta)
                if seen == 2:
                    break
            await stream.aclose()
            return seen

        other = asyncio.create_task(
            collect(
                engine.generate(
                    GenerateRequest(prompt="Tell me about mountains.", options=SamplingOptions(temperature=0.0, num_predict=24))
                )
            )
        )
        assert await partial() == 2
        text, _, done = await other
        assert text and done.completion_tokens > 0, "the other stream runs to its end"
        # Every slot is free again: a full set of parallel requests runs to the end.
        request = GenerateRequest(prompt="Say hello.", options=SamplingOptions(temperature=0.0, num_predict=4))
        results = await asyncio.gather(*(collect(engine.generate(request)) for _ in range(settings.parallel)))
        assert all(0 < r[2].completion_tokens <= 4 for r in results)

    # -- embeddings ------------------------------------------------------------------------

    async def test_embeddings(self, backend: type[Backend], engine: Engine, model: ModelRef) -> None:
        self.needs(backend, "embedding")
        result = await engine.embed(EmbedRequest(inputs=["The sky is blue.", "The sky is blue.", "Bananas are yellow."]))
        a, b, c = result.vectors
        dim = self.embedding_dim(model)
        assert len(a) == dim
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5)
        assert a != pytest.approx(c, rel=1e-3)
        assert result.prompt_tokens > 0

    def embedding_dim(self, model: ModelRef) -> Any:
        arch = model.info.get("general.architecture", "")
        return model.info.get(f"{arch}.embedding_length")
