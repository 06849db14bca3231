"""Prompt lookup: the drafts are the tokens that followed an earlier occurrence of the last n-gram."""

from __future__ import annotations

from array import array

from hypothesis import given
from hypothesis import strategies as st

from vllama.drafting import NGRAM_SIZES, prompt_lookup


def _reference(history: list[int], max_tokens: int) -> list[int]:
    """The same rule, written plainly."""
    n = len(history)
    for size in NGRAM_SIZES:
        if n <= size:
            continue
        tail = history[n - size :]
        for start in range(n - size - 1, -1, -1):
            if history[start : start + size] == tail:
                return history[start + size : start + size + max_tokens]
    return []


@given(st.lists(st.integers(min_value=0, max_value=4), max_size=60), st.integers(min_value=0, max_value=10))
def test_prompt_lookup_follows_the_latest_earlier_occurrence(history: list[int], max_tokens: int) -> None:
    assert prompt_lookup(array("i", history), max_tokens) == _reference(history, max_tokens)


@given(st.lists(st.integers(min_value=-(2**31), max_value=2**31 - 1), max_size=40))
def test_no_match_across_token_boundaries(history: list[int]) -> None:
    """Token ids whose bytes could line up across two tokens still match only whole tokens."""
    assert prompt_lookup(array("i", history), 4) == _reference(history, 4)


def test_a_copied_span_is_drafted() -> None:
    prompt = [5, 6, 7, 8, 9, 10, 11, 12]
    reply = [1, 7, 8, 9]
    assert prompt_lookup(array("i", prompt + reply), 3) == [10, 11, 12]
    assert prompt_lookup(array("i", [1, 2, 3]), 3) == []
    assert prompt_lookup(array("i", prompt + reply), 0) == []
