"""Memory: the KV cache estimate, refusing loads that cannot fit, and the worker's limit."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path
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

LLAMA = {
    "general.architecture": "llama",
    "llama.block_count": 30,
    "llama.embedding_length": 576,
    "llama.attention.head_count": 9,
    "llama.attention.head_count_kv": 3,
}


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
    assert (
        info.value.message.startswith("model requires more system memory (") and "num_ctx 16777216 with 256 parallel" in info.value.message
    )


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
    assert memory.needed_bytes(ModelRef(name="x", format="onnx", path="/x", info=LLAMA), LoadSettings()) is None


# -- safetensors and MLX directories ---------------------------------------------------------

#: SmolLM2-135M's config.json, as the safetensors test model has it.
SMOLLM2_CONFIG = {
    "model_type": "llama",
    "num_hidden_layers": 30,
    "hidden_size": 576,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "max_position_embeddings": 8192,
}
#: K and V x 30 layers x 3 KV heads x 64 x 2 bytes: what MLX and llama.cpp cache per token in bf16/f16.
SMOLLM2_TOKEN = 2 * 30 * 3 * 64 * 2


def _model_dir(root: Path, config: dict[str, Any], tensors: dict[str, tuple[str, int]], shards: int = 1) -> Path:
    """A model directory: ``config`` and safetensors files whose headers list ``tensors`` (name:
    dtype and bytes), spread over ``shards`` files, with sparse (unwritten) data."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config))
    names = sorted(tensors)
    for i in range(shards):
        header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name in names[i::shards]:
            dtype, size = tensors[name]
            header[name] = {"dtype": dtype, "shape": [size], "data_offsets": [offset, offset + size]}
            offset += size
        raw = json.dumps(header).encode()
        with (root / f"model-{i:05d}-of-{shards:05d}.safetensors").open("wb") as f:
            f.write(struct.pack("<Q", len(raw)) + raw)
            f.truncate(8 + len(raw) + offset)
    return root


def _ref(path: Path, fmt: str = "safetensors") -> ModelRef:
    return ModelRef(name="st:latest", format=fmt, path=str(path), size=1)


def test_safetensors_weights_are_read_from_the_headers_of_every_shard(tmp_path: Path) -> None:
    tensors = {"embed": ("BF16", 1000), "norm": ("F32", 40), "q.weight": ("U32", 600), "q.scales": ("F16", 80)}
    path = _model_dir(tmp_path, SMOLLM2_CONFIG, tensors, shards=3)
    by_dtype = memory.safetensors_bytes(path)
    assert by_dtype == {"BF16": 1000, "F32": 40, "U32": 600, "F16": 80}
    assert memory.weights_bytes(by_dtype) == 1720
    # A cast changes the floating-point tensors only, as MLX's set_dtype and vLLM's dtype do.
    assert memory.weights_bytes(by_dtype, "float32") == 2000 + 40 + 600 + 160
    assert memory.weights_bytes(by_dtype, "half") == 1000 + 20 + 600 + 80
    assert memory.weights_bytes(by_dtype, "fp8") == 1720  # not a weight type: as stored


def test_the_compute_type_is_the_setting_else_that_of_most_float_weights() -> None:
    assert memory.compute_itemsize({"BF16": 1000, "F32": 40}) == 2
    assert memory.compute_itemsize({"BF16": 10, "F32": 4000}) == 4
    assert memory.compute_itemsize({"U32": 10**9, "F16": 10**7}) == 2  # MLX 4-bit: its scales' type
    assert memory.compute_itemsize({"BF16": 1000}, "float32") == 4
    assert memory.compute_itemsize({"U8": 1000}) == 2


def test_kv_cache_of_a_hf_config() -> None:
    assert memory.hf_kv_cache_bytes(SMOLLM2_CONFIG, 1, 1, 2) == SMOLLM2_TOKEN
    assert memory.hf_kv_cache_bytes(SMOLLM2_CONFIG, 4096, 4, 2) == 360 * 2**20  # as llama.cpp's f16 cache
    no_head_dim = {k: v for k, v in SMOLLM2_CONFIG.items() if k != "head_dim"}
    assert memory.hf_kv_cache_bytes(no_head_dim, 1, 1, 2) == SMOLLM2_TOKEN  # hidden_size / heads
    mha = {k: v for k, v in no_head_dim.items() if k != "num_key_value_heads"}
    assert memory.hf_kv_cache_bytes(mha, 1, 1, 4) == 2 * 30 * 9 * 64 * 4
    # Qwen3: head_dim is not hidden_size / heads.
    qwen3 = {"num_hidden_layers": 28, "hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128}
    assert memory.hf_kv_cache_bytes(qwen3, 1, 1, 2) == 2 * 28 * 8 * 128 * 2
    # A multimodal model's text part; DeepSeek's latent attention.
    assert memory.hf_kv_cache_bytes({"model_type": "llava", "text_config": SMOLLM2_CONFIG}, 1, 1, 2) == SMOLLM2_TOKEN
    mla = {"num_hidden_layers": 61, "num_attention_heads": 128, "kv_lora_rank": 512, "qk_rope_head_dim": 64}
    assert memory.hf_kv_cache_bytes(mla, 1, 1, 2) == 61 * (512 + 64) * 2
    assert memory.hf_kv_cache_bytes({"num_hidden_layers": 30}, 1, 1, 2) is None


def test_sliding_window_and_linear_layers_hold_less() -> None:
    base = {"num_hidden_layers": 4, "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 1, "sliding_window": 100}
    types = {**base, "layer_types": ["sliding_attention", "full_attention", "linear_attention", "sliding_attention"]}
    assert memory.hf_kv_cache_bytes(types, 1000, 1, 1) == 2 * (100 + 1000 + 0 + 100)
    assert memory.hf_kv_cache_bytes(types, 50, 1, 1) == 2 * (50 + 50 + 0 + 50)
    gemma = {**base, "sliding_window_pattern": 2}  # layers 1 and 3 are global
    assert memory.hf_kv_cache_bytes(gemma, 1000, 1, 1) == 2 * (100 + 1000 + 100 + 1000)
    plain = {**base, "use_sliding_window": False}  # Qwen2 names a window it does not use
    assert memory.hf_kv_cache_bytes(plain, 1000, 1, 1) == 2 * 4 * 1000


@pytest.fixture(scope="module")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M's shape: its config and 269,030,016 bytes of bf16 weights."""
    return _model_dir(tmp_path_factory.mktemp("smollm2"), SMOLLM2_CONFIG, {"w": ("BF16", 269_030_016)})


@given(st.integers(1, 2**24), st.integers(1, 256))
def test_a_directory_needs_its_weights_plus_the_cache(smollm2_dir: Path, num_ctx: int, parallel: int) -> None:
    needed = memory.needed_bytes(_ref(smollm2_dir), LoadSettings(num_ctx=num_ctx, parallel=parallel))
    assert needed == 269_030_016 + SMOLLM2_TOKEN * num_ctx * parallel


def test_the_dtype_setting_sizes_weights_and_cache(smollm2_dir: Path, tmp_path: Path) -> None:
    path = smollm2_dir
    f32 = LoadSettings(num_ctx=1024, parallel=2, engine={"dtype": "float32"})
    assert memory.needed_bytes(_ref(path), f32) == 2 * 269_030_016 + 2 * SMOLLM2_TOKEN * 1024 * 2
    assert (
        memory.needed_bytes(_ref(path), LoadSettings(num_ctx=1024, parallel=2, engine={"dtype": "auto"}))
        == 269_030_016 + SMOLLM2_TOKEN * 2048
    )
    quantized = _model_dir(tmp_path / "q4", SMOLLM2_CONFIG, {"w": ("U32", 60_000_000), "s": ("BF16", 8_000_000)})
    assert memory.needed_bytes(_ref(quantized, "mlx"), LoadSettings(num_ctx=100, parallel=1)) == 68_000_000 + SMOLLM2_TOKEN * 100


def test_an_unreadable_directory_is_not_estimated(tmp_path: Path) -> None:
    assert memory.needed_bytes(_ref(tmp_path / "gone"), LoadSettings()) is None
    (tmp_path / "config.json").write_text("{}")
    assert memory.needed_bytes(_ref(tmp_path), LoadSettings()) is None  # no weights
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 16)
    assert memory.needed_bytes(_ref(tmp_path), LoadSettings()) is None  # not safetensors
    shapeless = _model_dir(tmp_path / "shapeless", {"model_type": "x"}, {"w": ("BF16", 10)})
    assert memory.needed_bytes(_ref(shapeless), LoadSettings()) is None


def test_a_safetensors_load_that_cannot_fit_is_refused_with_the_sizes(smollm2_dir: Path) -> None:
    cpu = Hardware(devices=(Device(kind="cpu", name="cpu"),))
    model = _ref(smollm2_dir)
    memory.check_fits(model, LoadSettings(num_ctx=4096, parallel=4), cpu)
    with pytest.raises(memory.InsufficientMemory) as info:
        memory.check_fits(model, LoadSettings(num_ctx=2**24, parallel=2), cpu)
    assert info.value.status == 400
    assert info.value.message.startswith("model requires more system memory (720.3 GiB) than is available (")
    assert info.value.message.endswith("for num_ctx 16777216 with 2 parallel; lower num_ctx or num_parallel")


class _Reserving:
    """A backend that says what a load takes (vLLM's CPU build reserves a pool of its own)."""

    answer: ClassVar[int | None] = None

    @classmethod
    def memory_needed(cls, model: ModelRef, hardware: Hardware, settings: LoadSettings) -> int | None:
        return cls.answer


def test_a_backend_that_sizes_its_own_load_is_asked_first(smollm2_dir: Path) -> None:
    model, huge = _ref(smollm2_dir), LoadSettings(num_ctx=2**24, parallel=2)
    _Reserving.answer = None  # checks for itself
    memory.check_fits(model, huge, Hardware(), backend=_Reserving)
    _Reserving.answer = 2**60
    with pytest.raises(memory.InsufficientMemory, match=r"model requires more system memory \(1073741824.0 GiB\)"):
        memory.check_fits(model, LoadSettings(), Hardware(), backend=_Reserving)
    # A backend that does not size its loads gets the estimate above.
    with pytest.raises(memory.InsufficientMemory, match=r"\(720.3 GiB\)"):
        memory.check_fits(model, huge, Hardware(), backend=IsolatedEchoBackend)


@pytest.mark.parametrize(
    ("raw", "expected"), [("8GiB", 8 * 2**30), ("512MB", 512 * 10**6), ("1000", 1000), ("off", 0), ("0", 0), ("1.5g", 1_500_000_000)]
)
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
        engine = await WorkerEngine.start(
            HungryBackend, model, Hardware(), LoadSettings(engine={"hungry_bytes": hungry}), memory_limit=limit
        )
        await engine.close()
        return engine

    return asyncio.run(go())


def test_a_worker_past_its_memory_limit_fails_its_load_cleanly() -> None:
    with pytest.raises(EngineError, match=r"the engine ran out of memory: it needs more than its limit \(VLLAMA_WORKER_MEMORY\)"):
        _start(hungry=1 << 30, limit=400 << 20)


def test_a_worker_within_its_limit_loads() -> None:
    assert _start(hungry=50 << 20, limit=400 << 20) is not None
