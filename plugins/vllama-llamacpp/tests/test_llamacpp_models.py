"""Loading (and failing to load) models, a model without a chat template, and embeddings."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from vllama.errors import ContextOverflow, EngineError, Unsupported
from vllama.types import (
    ChatRequest,
    Delta,
    Done,
    EmbedRequest,
    GenerateRequest,
    Hardware,
    LoadSettings,
    Message,
    ModelRef,
    SamplingOptions,
)
from vllama_llamacpp.backend import LlamaCppBackend
from vllama_llamacpp.engine import LlamaCppEngine

pytestmark = pytest.mark.engine


async def test_a_file_that_is_not_gguf_fails_to_load(tmp_path: Path, hardware: Hardware) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 this is a zip file, not a model" * 100)
    with pytest.raises(EngineError, match="failed to load model bad"):
        await LlamaCppBackend.load(ModelRef(name="bad", format="gguf", path=str(path)), hardware, LoadSettings())


async def test_a_truncated_gguf_fails_to_load(tmp_path: Path, smollm2: ModelRef, hardware: Hardware) -> None:
    path = tmp_path / "cut.gguf"
    with open(smollm2.path, "rb") as f:
        path.write_bytes(f.read(os.path.getsize(smollm2.path) // 2))
    with pytest.raises(EngineError, match="truncated"):
        await LlamaCppBackend.load(ModelRef(name="cut", format="gguf", path=str(path)), hardware, LoadSettings())


async def test_llama_cpp_errors_are_reported(tmp_path: Path, smollm2: ModelRef, hardware: Hardware) -> None:
    """A header the pure-Python reader accepts but llama.cpp rejects: its own message comes back."""
    data = bytearray(Path(smollm2.path).read_bytes())
    key = b"general.architecture"
    at = data.index(key) + len(key) + 4 + 8  # skip the value type and the string length
    data[at : at + 5] = b"nomod"  # "llama" -> an architecture llama.cpp does not know
    path = tmp_path / "arch.gguf"
    path.write_bytes(bytes(data))
    with pytest.raises(EngineError, match="nomod"):
        await LlamaCppBackend.load(ModelRef(name="arch", format="gguf", path=str(path)), hardware, LoadSettings())


async def test_model_without_template_cannot_chat(gemma_engine: LlamaCppEngine) -> None:
    request = ChatRequest(messages=[Message(role="user", content="Hi")])
    with pytest.raises(Unsupported, match='"gemma3:270m" does not support chat'):
        await anext(gemma_engine.chat(request))


async def test_model_without_template_generates_from_the_bare_prompt(gemma_engine: LlamaCppEngine) -> None:
    request = GenerateRequest(prompt="Monday, Tuesday, Wednesday,", options=SamplingOptions(temperature=0, num_predict=8))
    text = "".join([e.text async for e in gemma_engine.generate(request) if isinstance(e, Delta)])
    assert "Thursday" in text


async def test_embeddings(engine: LlamaCppEngine) -> None:
    texts = ["The cat sat on the mat.", "Quantum chromodynamics describes quarks."]
    first = await engine.embed(EmbedRequest(inputs=texts))
    again = await engine.embed(EmbedRequest(inputs=texts[:1]))
    assert [len(v) for v in first.vectors] == [576, 576]
    assert first.prompt_tokens > 0
    assert again.vectors[0] == pytest.approx(first.vectors[0], abs=1e-5)
    assert _cosine(first.vectors[0], first.vectors[1]) < 0.99
    assert abs(math.sqrt(sum(x * x for x in first.vectors[0])) - 1) > 1e-3  # not normalised


async def test_embedding_overflow(tiny_engine: LlamaCppEngine) -> None:
    long = "word " * 100
    with pytest.raises(ContextOverflow):
        await tiny_engine.embed(EmbedRequest(inputs=[long], truncate=False))
    cut = await tiny_engine.embed(EmbedRequest(inputs=[long], truncate=True))
    assert cut.prompt_tokens == 64


async def test_a_full_context_ends_with_length(tiny_engine: LlamaCppEngine) -> None:
    request = GenerateRequest(prompt="Once upon a time, there was", raw=True, options=SamplingOptions(temperature=0))
    events = [e async for e in tiny_engine.generate(request)]
    done = events[-1]
    assert isinstance(done, Done) and done.reason == "length"
    assert done.prompt_tokens + done.completion_tokens == 65  # the last token is sampled, not decoded


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


async def test_closing_the_engine_ends_open_streams(smollm2: ModelRef, hardware: Hardware) -> None:
    engine = await LlamaCppBackend.load(smollm2, hardware, LoadSettings(num_ctx=256, num_thread=1))
    stream = engine.generate(GenerateRequest(prompt="Write a story.", options=SamplingOptions(num_predict=200)))
    assert isinstance(await anext(stream), Delta)
    await engine.close()
    with pytest.raises(EngineError, match="unloaded"):
        async for _ in stream:
            pass
