"""Memory: the KV cache estimate, refusing loads that cannot fit, and the worker's limit."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllama import gguf, memory
from vllama.config import Settings, parse_size
from vllama.engine import Engine
from vllama.errors import EngineError
from vllama.testing.echo import EchoEngine, IsolatedEchoBackend
from vllama.testing.hf_models import smollm2_gguf
from vllama.types import Device, Hardware, LoadSettings, ModelRef
from vllama.worker import WorkerEngine

LLAMA = {"general.architecture": "llama", "llama.block_count": 30, "llama.embedding_length": 576,
         "llama.attention.head_count": 9, "llama.attention.head_count_kv": 3}  # fmt: skip


def test_kv_cache_of_smollm2_matches_what_llamacpp_allocates() -> None:
    info = gguf.read(smollm2_gguf()).metadata
    # llama.cpp logs "attempted to allocate 360.00 MB" for 4 sequences of 4096 tokens.
    assert memory.kv_cache_bytes(info, 4096, 4) == 360 * 2**20


@given(st.integers(1, 2**24), st.integers(1, 256))
def test_kv_cache_grows_with_context_and_sequences(num_ctx: int, parallel: int) -> None:
    one = memory.kv_cache_bytes(LLAMA, 1, 1)
    assert one == 30 * 3 * (64 + 64) * 2
    assert memory.kv_cache_bytes(LLAMA, num_ctx, parallel) == one * num_ctx * parallel


def test_per_layer_head_counts_and_missing_shape() -> None:
    info = {**LLAMA, "llama.attention.head_count_kv": [3] * 10 + [1] * 20}
    assert memory.kv_cache_bytes(info, 1, 1) == (30 + 20) * 128 * 2
    assert memory.kv_cache_bytes({"general.architecture": "llama"}, 1, 1) is None


def _model(size: int = 100 * 2**20) -> ModelRef:
    return ModelRef(name="m:latest", format="gguf", path="/m.gguf", size=size, info=LLAMA)


def test_a_load_that_cannot_fit_is_refused_with_the_sizes() -> None:
    cpu = Hardware(devices=(Device(kind="cpu", name="cpu"),))
    memory.check_fits(_model(), LoadSettings(num_ctx=4096, parallel=4), cpu)
    huge = LoadSettings(num_ctx=2**24, parallel=256)  # the largest the option table allows: 90 TiB of cache
    with pytest.raises(memory.InsufficientMemory) as info:
        memory.check_fits(_model(), huge, cpu)
    assert info.value.status == 400
    assert info.value.message.startswith("model requires more system memory (") and "num_ctx 16777216 with 256 parallel" in info.value.message


def test_accelerator_memory_and_idle_models_count_as_room() -> None:
    settings = LoadSettings(num_ctx=4096, parallel=1)
    free = memory.system_available_bytes()
    big = _model(size=2 * free)  # the weights alone take twice what is free now
    with pytest.raises(memory.InsufficientMemory):
        memory.check_fits(big, settings, Hardware())
    memory.check_fits(big, settings, Hardware(), reclaimable=2 * free)
    gpu = Hardware(devices=(Device(kind="cuda", name="gpu", memory_bytes=2 * free),))
    memory.check_fits(big, settings, gpu)


def test_other_formats_are_not_estimated() -> None:
    assert memory.needed_bytes(ModelRef(name="x", format="safetensors", path="/x", info=LLAMA), LoadSettings()) is None


@pytest.mark.parametrize(("raw", "expected"), [("8GiB", 8 * 2**30), ("512MB", 512 * 10**6), ("1000", 1000), ("off", 0), ("0", 0), ("1.5g", 1_500_000_000)])
def test_worker_memory_setting(raw: str, expected: int) -> None:
    assert parse_size("VLLAMA_WORKER_MEMORY", raw) == expected
    assert Settings.from_env({"VLLAMA_WORKER_MEMORY": raw}).worker_memory == expected


@pytest.mark.parametrize("raw", ["lots", "-5", "8XB"])
def test_bad_worker_memory_setting(raw: str) -> None:
    with pytest.raises(ValueError, match="VLLAMA_WORKER_MEMORY"):
        parse_size("VLLAMA_WORKER_MEMORY", raw)


def test_worker_limit_defaults_to_the_machine() -> None:
    assert memory.worker_limit(None) == memory.total_bytes() > 0
    assert memory.worker_limit(0) is None
    assert memory.worker_limit(2**30) == 2**30


class HungryBackend(IsolatedEchoBackend):
    """Allocates ``hungry_bytes`` while loading, as an engine's cache would."""

    name: ClassVar[str] = "hungry"
    engine_settings: ClassVar[frozenset[str]] = frozenset({"hungry_bytes"})

    @classmethod
    async def load(cls, model: ModelRef, hardware: Hardware, settings: LoadSettings) -> Engine:
        cls.kept = bytearray(int(settings.engine["hungry_bytes"]))
        return EchoEngine(model, settings)


def _start(hungry: int, limit: int | None) -> Any:
    async def go() -> Any:
        model = ModelRef(name="hungry", format="gguf", path="/none")
        engine = await WorkerEngine.start(HungryBackend, model, Hardware(), LoadSettings(engine={"hungry_bytes": hungry}), memory_limit=limit)
        await engine.close()
        return engine

    return asyncio.run(go())


def test_a_worker_past_its_memory_limit_fails_its_load_cleanly() -> None:
    with pytest.raises(EngineError, match=r"the engine ran out of memory: it needs more than its limit \(VLLAMA_WORKER_MEMORY\)"):
        _start(hungry=1 << 30, limit=400 << 20)


def test_a_worker_within_its_limit_loads() -> None:
    assert _start(hungry=50 << 20, limit=400 << 20) is not None
