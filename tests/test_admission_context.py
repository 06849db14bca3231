"""``context`` token ids are checked against the model's vocabulary before any load."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllama import admission
from vllama.errors import BadRequest
from vllama.testing.echo import EchoBackend
from vllama.types import GenerateRequest, ModelRef

MODEL = ModelRef(
    name="m", format="safetensors", path="/m", capabilities=["completion"], info={"general.architecture": "llama", "llama.vocab_size": 1000}
)


@given(st.lists(st.integers(0, 999), max_size=20))
def test_ids_in_the_vocabulary_are_accepted(context: list[int]) -> None:
    admission.check(MODEL, EchoBackend, GenerateRequest(prompt="x", context=context))


@given(st.lists(st.integers(0, 999), max_size=5), st.one_of(st.integers(max_value=-1), st.integers(min_value=1000)))
def test_an_id_outside_it_is_a_400(context: list[int], bad: int) -> None:
    with pytest.raises(BadRequest, match=f"^invalid context: token id {bad} is out of range$"):
        admission.check(MODEL, EchoBackend, GenerateRequest(prompt="x", context=[*context, bad]))


def test_without_a_vocabulary_size_only_negative_ids_are_refused() -> None:
    model = ModelRef(name="m", format="gguf", path="/m", capabilities=["completion"])
    admission.check(model, EchoBackend, GenerateRequest(prompt="x", context=[10**9]))
    with pytest.raises(BadRequest, match="token id -1 is out of range"):
        admission.check(model, EchoBackend, GenerateRequest(prompt="x", context=[-1]))
