"""At the seam with vLLM: engine settings, the parallel layout and the memory budget reach
vLLM's AsyncEngineArgs (nothing is started), and models that cannot fit fail clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vllama.errors import BadRequest, Unsupported
from vllama.probes import cpu_device
from vllama.types import Device, Hardware, LoadSettings, ModelRef, SamplingOptions
from vllama_vllm.backend import VllmBackend
from vllama_vllm.memory import DoesNotFit, GiB, GpuMemory, ModelShape
from vllama_vllm.plan import host_bytes, plan
from vllama_vllm.sampling import sampling_kwargs, sampling_params

CPU = Hardware(devices=(cpu_device(),))
GPUS = Hardware(devices=(cpu_device(), *(Device(kind="cuda", name="NVIDIA H100", index=i, memory_bytes=80 * GiB) for i in range(8))))
#: SmolLM2's KV cache per token in float32: K and V x 30 layers x 3 KV heads x 64 x 4 bytes.
SMOLLM2_KV_F32 = 2 * 30 * 3 * 64 * 4


def idle_gpus(free: float = 80) -> list[GpuMemory]:
    return [GpuMemory(index=i, total=80 * GiB, free=int(free * GiB)) for i in range(8)]


def test_importing_the_entry_point_imports_no_engine() -> None:
    code = "import sys, vllama_vllm; assert not {'vllm', 'torch'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_supports_safetensors_first_on_nvidia_and_as_a_fallback_on_cpu(smollm2: ModelRef) -> None:
    on_gpu, on_cpu = VllmBackend.supports(smollm2, GPUS), VllmBackend.supports(smollm2, CPU)
    assert on_gpu is not None and on_gpu.score == 100 and on_gpu.parallel == 256
    assert on_cpu is not None and 0 < on_cpu.score < 50
    gguf = ModelRef(name="x", format="gguf", path="/x.gguf")
    assert VllmBackend.supports(gguf, GPUS) is None


def test_a_model_is_served_as_a_generator_or_as_an_embedder(smollm2: ModelRef, minilm: ModelRef) -> None:
    generator, embedder = VllmBackend.supports(smollm2, CPU), VllmBackend.supports(minilm, GPUS)
    assert generator is not None and embedder is not None
    assert generator.capabilities is not None and "embedding" not in generator.capabilities and "tools" in generator.capabilities
    assert embedder.capabilities == frozenset({"embedding"})


def test_a_cross_encoder_is_served_as_a_reranker_with_the_pooling_runner() -> None:
    from vllama.testing.hf_models import minilm_cross_encoder_dir

    from .conftest import ref_for

    cross_encoder = ref_for("minilm-ce", minilm_cross_encoder_dir())
    support = VllmBackend.supports(cross_encoder, CPU)
    assert cross_encoder.capabilities == ["rerank"]
    assert support is not None and support.capabilities == frozenset({"rerank"})
    assert plan(cross_encoder, CPU, LoadSettings(num_ctx=512), ram=lambda: 64 * GiB).kwargs["runner"] == "pooling"


def test_parallel_layout_and_engine_settings_reach_engine_args(smollm2: ModelRef) -> None:
    from vllama_vllm.engine import engine_args

    engine = {
        "tensor_parallel_size": 4,
        "pipeline_parallel_size": 2,
        "data_parallel_size": 1,
        "distributed_executor_backend": "ray",
        "gpu_memory_utilization": 0.8,
        "max_num_seqs": 128,
        "max_num_batched_tokens": 8192,
        "enable_prefix_caching": False,
        "enable_chunked_prefill": True,
        "dtype": "bfloat16",
        "quantization": "fp8",
        "enforce_eager": True,
        "kv_cache_dtype": "fp8",
    }
    layout = plan(smollm2, GPUS, LoadSettings(num_ctx=4096, parallel=64, engine=engine), gpu_memory=idle_gpus)
    args = engine_args(layout)
    for key, value in engine.items():
        assert getattr(args, key) == value, key
    assert args.model == smollm2.path and args.max_model_len == 4096 and args.served_model_name == "smollm2-hf"
    assert layout.on_gpu and layout.gpu_claim_bytes == 8 * int(0.8 * 80 * GiB)  # 4 x 2 GPUs
    assert args.runner == "generate" and args.kv_cache_memory_bytes is None


def test_data_parallel_over_ray_nodes(smollm2: ModelRef) -> None:
    from vllama_vllm.engine import engine_args

    engine = {"data_parallel_size": 4, "data_parallel_backend": "ray", "tensor_parallel_size": 2}
    args = engine_args(plan(smollm2, GPUS, LoadSettings(num_ctx=2048, parallel=32, engine=engine), gpu_memory=idle_gpus))
    assert (args.data_parallel_size, args.data_parallel_backend, args.tensor_parallel_size) == (4, "ray", 2)
    assert args.max_num_seqs == 32 and args.gpu_memory_utilization == 0.9


def test_the_default_gpu_share_shrinks_to_what_other_models_left(smollm2: ModelRef) -> None:
    """A second model on a GPU where another engine holds about half: it takes what is free."""
    half_used = lambda: [GpuMemory(index=0, total=80 * GiB, free=41 * GiB)]
    layout = plan(smollm2, GPUS, LoadSettings(num_ctx=2048, parallel=8), gpu_memory=half_used)
    assert layout.kwargs["gpu_memory_utilization"] == pytest.approx(41 / 80 - 0.02, abs=1e-3)
    with pytest.raises(DoesNotFit, match=r"gpu_memory_utilization 0.9 claims 72.0 GiB of GPU 0 but only 41.0 GiB is free"):
        plan(smollm2, GPUS, LoadSettings(engine={"gpu_memory_utilization": 0.9}), gpu_memory=half_used)
    assert (
        plan(smollm2, GPUS, LoadSettings(engine={"gpu_memory_utilization": 0.45}), gpu_memory=half_used).kwargs["gpu_memory_utilization"]
        == 0.45
    )


def test_weights_larger_than_the_gpu_share_do_not_fit(smollm2: ModelRef) -> None:
    tiny = lambda: [GpuMemory(index=0, total=512 * 1024 * 1024, free=512 * 1024 * 1024)]
    with pytest.raises(DoesNotFit, match="its weights need .* per GPU"):
        plan(smollm2, GPUS, LoadSettings(engine={"gpu_memory_utilization": 0.5}), gpu_memory=tiny)


def test_a_context_whose_kv_cache_cannot_fit_beside_the_weights_is_refused(smollm2: ModelRef) -> None:
    one_gib = lambda: [GpuMemory(index=0, total=GiB, free=GiB)]
    # bf16 KV: 23,040 bytes per token; 8,192 tokens need 0.18 GiB, but 0.4 GiB - 0.25 GiB of weights leaves 0.15.
    with pytest.raises(DoesNotFit, match="a full context needs 0.18 GiB of KV cache per GPU but only 0.15 GiB"):
        plan(smollm2, GPUS, LoadSettings(num_ctx=8192, engine={"gpu_memory_utilization": 0.4}), gpu_memory=one_gib)
    assert plan(smollm2, GPUS, LoadSettings(num_ctx=4096, engine={"gpu_memory_utilization": 0.4}), gpu_memory=one_gib).on_gpu


def test_cpu_defaults_size_the_kv_cache_for_the_context_and_pin_threads(smollm2: ModelRef) -> None:
    layout = plan(smollm2, CPU, LoadSettings(num_ctx=1024, parallel=4, num_thread=1), ram=lambda: 16 * GiB)
    kwargs = layout.kwargs
    assert kwargs["dtype"] == "float32" and kwargs["enforce_eager"] is True
    assert layout.kv_bytes_per_token == SMOLLM2_KV_F32
    assert kwargs["kv_cache_memory_bytes"] == 1024 * 4 * SMOLLM2_KV_F32
    assert layout.weights_bytes == 2 * ModelShape.read(smollm2.path).weights_bytes  # bf16 on disk, float32 loaded
    assert layout.env["VLLM_CPU_OMP_THREADS_BIND"].isdigit()
    chosen = plan(smollm2, CPU, LoadSettings(engine={"dtype": "bfloat16", "enforce_eager": False}), ram=lambda: 16 * GiB)
    assert chosen.kwargs["dtype"] == "bfloat16" and chosen.kwargs["enforce_eager"] is False
    assert chosen.kv_bytes_per_token == SMOLLM2_KV_F32 // 2


def test_vllm_accepts_the_cpu_plan(smollm2: ModelRef) -> None:
    """vLLM builds its whole configuration from the plan (still without starting anything)."""
    from vllama_vllm.engine import engine_args

    config = engine_args(plan(smollm2, CPU, LoadSettings(num_ctx=1024, parallel=4))).create_engine_config()
    assert config.model_config.max_model_len == 1024 and config.scheduler_config.max_num_seqs == 4
    assert config.cache_config.kv_cache_memory_bytes == 1024 * 4 * SMOLLM2_KV_F32


async def test_a_context_the_kv_cache_cannot_hold_is_a_clear_error(smollm2: ModelRef) -> None:
    settings = LoadSettings(num_ctx=8192, parallel=1, engine={"kv_cache_memory_bytes": 64 << 20})
    with pytest.raises(DoesNotFit, match="a context of 8192 tokens needs 360 MiB of KV cache but the engine has 64 MiB"):
        await VllmBackend.load(smollm2, CPU, settings)
    with pytest.raises(DoesNotFit, match="more system memory"):
        plan(smollm2, CPU, LoadSettings(num_ctx=1024), ram=lambda: 256 << 20)


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ({"gpu_memory_utilization": 1.5}, 'engine setting "gpu_memory_utilization": Expected `float` <= 1.0, got 1.5'),
        ({"tensor_parallel_size": 0}, 'engine setting "tensor_parallel_size": Expected `int` >= 1, got 0'),
        ({"distributed_executor_backend": "mpi"}, "engine setting \"distributed_executor_backend\": Invalid enum value 'mpi'"),
        ({"enforce_eager": "maybe"}, 'engine setting "enforce_eager": Expected `bool | null`, got `str`'),
    ],
)
def test_bad_engine_settings_are_bad_requests(engine: dict, message: str) -> None:
    with pytest.raises(BadRequest) as e:
        VllmBackend.check_engine_settings(engine)
    assert str(e.value).startswith(message)


def test_engine_settings_reach_vllm_typed(smollm2: ModelRef) -> None:
    """Modelfile values arrive as text or floats; vLLM gets its own types."""
    engine = {"enforce_eager": "false", "max_num_seqs": 4.0, "kv_cache_memory_bytes": 256 << 20}
    kwargs = plan(smollm2, CPU, LoadSettings(engine=engine)).kwargs
    assert kwargs["enforce_eager"] is False and kwargs["kv_cache_memory_bytes"] == 256 << 20
    assert kwargs["max_num_seqs"] == 4 and isinstance(kwargs["max_num_seqs"], int)


def test_ollama_options_become_sampling_params() -> None:
    options = SamplingOptions(
        temperature=0.7,
        top_k=20,
        top_p=0.8,
        min_p=0.05,
        seed=7,
        num_predict=100,
        stop=["\n\n"],
        repeat_penalty=1.1,
        presence_penalty=0.5,
        frequency_penalty=0.25,
    )
    kwargs = sampling_kwargs(options, prompt_tokens=10, max_model_len=512, top_logprobs=2)
    params = sampling_params(**kwargs)
    assert (params.temperature, params.top_k, params.top_p, params.min_p, params.seed) == (0.7, 20, 0.8, 0.05, 7)
    assert (params.max_tokens, params.stop, params.logprobs) == (100, ["\n\n"], 2)
    assert (params.repetition_penalty, params.presence_penalty, params.frequency_penalty) == (1.1, 0.5, 0.25)
    unlimited = sampling_kwargs(SamplingOptions(num_predict=-1, top_k=0), prompt_tokens=10, max_model_len=512)
    assert unlimited["max_tokens"] == 502 and unlimited["top_k"] == 0
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    assert (
        sampling_params(**sampling_kwargs(SamplingOptions(), prompt_tokens=1, max_model_len=64, format=schema)).structured_outputs.json
        == schema
    )
    with pytest.raises(Unsupported, match="typical_p"):
        sampling_kwargs(SamplingOptions(typical_p=0.5), prompt_tokens=1, max_model_len=64)
    with pytest.raises(BadRequest, match="presence_penalty"):
        sampling_params(**sampling_kwargs(SamplingOptions(presence_penalty=9), prompt_tokens=1, max_model_len=64))


def test_end_tokens_stop_the_reply_unless_eos_is_ignored() -> None:
    ends = frozenset({151664, 151643})
    params = sampling_params(**sampling_kwargs(SamplingOptions(), prompt_tokens=1, max_model_len=64, end_tokens=ends))
    assert params.stop_token_ids == [151643, 151664]
    assert not sampling_params(**sampling_kwargs(SamplingOptions(), prompt_tokens=1, max_model_len=64)).stop_token_ids
    ignoring = sampling_kwargs(SamplingOptions(ignore_eos=True), prompt_tokens=1, max_model_len=64, end_tokens=ends)
    assert ignoring["stop_token_ids"] is None


def test_host_bytes_are_the_weights_and_the_kv_pool_the_plan_reserves(smollm2: ModelRef) -> None:
    """What the scheduler checks before any load: on a CPU, the float32 weights and the pool
    (not num_ctx x parallel: vLLM pages sequences in its pool); nothing on GPUs, whose memory
    the plan checks itself."""
    ram = lambda: 16 * GiB
    weights = 2 * ModelShape.read(smollm2.path).weights_bytes
    settings = LoadSettings(num_ctx=1024, parallel=4)
    assert host_bytes(smollm2, CPU, settings, ram=ram) == weights + 1024 * 4 * SMOLLM2_KV_F32
    layout = plan(smollm2, CPU, settings, ram=ram)
    assert host_bytes(smollm2, CPU, settings, ram=ram) == layout.weights_bytes + layout.kwargs["kv_cache_memory_bytes"]
    many = LoadSettings(num_ctx=8192, parallel=256)  # 90 GiB of cache asked for: the pool takes a quarter of the RAM
    assert host_bytes(smollm2, CPU, many, ram=ram) == weights + 4 * GiB
    # Too big for the machine: the number, for the scheduler's 400, not the plan's error.
    assert host_bytes(smollm2, CPU, LoadSettings(num_ctx=1024), ram=lambda: 256 << 20) == weights + 1024 * SMOLLM2_KV_F32
    assert host_bytes(smollm2, GPUS, many) is None
