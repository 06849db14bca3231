"""The answers match a reference: MLX's greedy tokens equal transformers' greedy tokens on the
same weights and prompt, and a config that mlx-lm would misread is caught (the test fails
without the fix-up: the rope base silently becomes 10000)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from vllama.probes import cpu_device
from vllama.testing.conformance import collect
from vllama.types import ChatRequest, Hardware, LoadSettings, Message, SamplingOptions
from vllama_mlx.backend import MlxBackend
from vllama_mlx.engine import MlxEngine

from .conftest import model_ref

#: A prompt on which a rope base of 10000 instead of 100000 changes the very first token.
QUESTION = "Write a haiku about the sea."
N_TOKENS = 8
#: float32 on both sides: the comparison is about the model, not bf16 rounding.
SETTINGS = LoadSettings(num_ctx=256, parallel=1, engine={"dtype": "float32"})


@pytest.fixture(scope="module")
def reference(smollm2_dir: Path) -> tuple[list[int], list[int]]:
    """transformers' chat prompt ids and greedy continuation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=N_TOKENS, do_sample=False)
    prompt = ids["input_ids"][0].tolist()
    return prompt, out[0, len(prompt) :].tolist()


def load(directory: Path) -> MlxEngine:
    engine = asyncio.run(MlxBackend.load(model_ref(directory), Hardware(devices=(cpu_device(),)), SETTINGS))
    assert isinstance(engine, MlxEngine)
    return engine


@pytest.fixture(scope="module")
def engine(smollm2_dir: Path) -> Iterator[MlxEngine]:
    engine = load(smollm2_dir)
    yield engine
    asyncio.run(engine.close())


async def greedy(engine: MlxEngine) -> tuple[list[int], list[int]]:
    request = ChatRequest(messages=[Message(role="user", content=QUESTION)], options=SamplingOptions(temperature=0, num_predict=N_TOKENS))
    _, _, done = await collect(engine.chat(request))
    return done.context[: done.prompt_tokens], done.context[done.prompt_tokens :]


async def test_greedy_tokens_equal_transformers(engine: MlxEngine, reference: tuple[list[int], list[int]]) -> None:
    prompt, tokens = await greedy(engine)
    assert prompt == reference[0], "the same chat template renders the same prompt"
    assert tokens == reference[1]


async def test_a_repeated_prompt_reuses_its_cache_and_answers_the_same(engine: MlxEngine, reference: tuple[list[int], list[int]]) -> None:
    before = engine.info().prefix_cache
    assert before is not None and before.entries >= 1 and before.bytes > 0
    prompt, tokens = await greedy(engine)
    assert tokens == reference[1]
    after = engine.info().prefix_cache
    assert after is not None and after.hits == before.hits + 1
    assert after.tokens_saved - before.tokens_saved == len(prompt) - 1


async def test_transformers5_config_is_fixed_up(transformers5_dir: Path, reference: tuple[list[int], list[int]]) -> None:
    engine = await asyncio.to_thread(load, transformers5_dir)
    try:
        _, tokens = await greedy(engine)
    finally:
        await engine.close()
    assert tokens == reference[1]


def test_without_the_fix_up_mlx_lm_answers_differently(transformers5_dir: Path, reference: tuple[list[int], list[int]]) -> None:
    """What the check prevents: mlx-lm alone reads rope_theta as 10000 and the tokens differ."""
    import mlx.core as mx
    from mlx_lm import load as mlx_load
    from mlx_lm.generate import generate_step

    model, _ = mlx_load(str(transformers5_dir))
    assert model.args.rope_theta == 10000
    model.set_dtype(mx.float32)
    steps = generate_step(mx.array(reference[0]), model, max_tokens=N_TOKENS)
    tokens = [int(t) for t, _ in steps]
    assert tokens[: len(reference[1])] != reference[1]
