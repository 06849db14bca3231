"""The host-memory prefix cache: longest-prefix lookup, its byte budget, LRU eviction and counters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vllama.prefix_cache import PrefixCache, common_prefix, tokens_of

token_lists = st.lists(st.integers(min_value=0, max_value=5), max_size=80)


@given(token_lists, token_lists)
def test_common_prefix_is_the_length_of_the_shared_start(a: list[int], b: list[int]) -> None:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    assert common_prefix(tokens_of(a), tokens_of(b)) == n


def _tokens(start: int, n: int) -> list[int]:
    return list(range(start, start + n))


def test_the_entry_sharing_the_longest_prefix_is_found() -> None:
    cache: PrefixCache[str] = PrefixCache(budget=1000, min_tokens=4)
    system = _tokens(0, 40)
    cache.put(tokens_of(system + _tokens(1000, 10)), "first", 10)
    cache.put(tokens_of(system + _tokens(2000, 20)), "second", 10)
    entry, common = cache.longest(tokens_of(system + _tokens(2000, 5) + [7]))
    assert entry is not None and entry.state == "second" and common == 45
    entry, common = cache.longest(tokens_of(system + [99]))
    assert entry is not None and common == 40


def test_nothing_is_found_below_the_minimum() -> None:
    cache: PrefixCache[str] = PrefixCache(budget=1000, min_tokens=8)
    cache.put(tokens_of(_tokens(0, 20)), "kept", 10)
    assert cache.longest(tokens_of(_tokens(0, 7) + [500])) == (None, 0)
    assert cache.longest(tokens_of([])) == (None, 0)


def test_short_or_oversized_states_are_not_kept() -> None:
    cache: PrefixCache[str] = PrefixCache(budget=100, min_tokens=8)
    cache.put(tokens_of(_tokens(0, 7)), "short", 10)
    cache.put(tokens_of(_tokens(0, 50)), "huge", 101)
    assert cache.stats().entries == 0
    disabled: PrefixCache[str] = PrefixCache(budget=0)
    disabled.put(tokens_of(_tokens(0, 50)), "any", 1)
    assert disabled.stats().entries == 0


def test_the_least_recently_used_go_first_to_stay_within_the_budget() -> None:
    cache: PrefixCache[str] = PrefixCache(budget=30, min_tokens=4)
    for i in range(3):
        cache.put(tokens_of(_tokens(i * 100, 10)), f"s{i}", 10)
    assert cache.longest(tokens_of(_tokens(0, 10)))[0] is not None  # s0 used: s1 is now the oldest
    cache.put(tokens_of(_tokens(300, 10)), "s3", 10)
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.evictions, stats.budget_bytes) == (3, 30, 1, 30)
    assert cache.longest(tokens_of(_tokens(100, 10))) == (None, 0)
    assert all(cache.longest(tokens_of(_tokens(i * 100, 10)))[0] is not None for i in (0, 2, 3))


def test_an_entry_that_a_new_one_extends_is_replaced() -> None:
    cache: PrefixCache[str] = PrefixCache(budget=1000, min_tokens=4)
    turn1 = _tokens(0, 20)
    cache.put(tokens_of(turn1), "turn 1", 10)
    assert cache.covers(tokens_of(turn1[:10]))
    cache.put(tokens_of(turn1 + _tokens(500, 20)), "turn 2", 12)
    stats = cache.stats()
    assert (stats.entries, stats.bytes) == (1, 12)
    assert not cache.covers(tokens_of(turn1 + [9999]))


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(4, 30), st.integers(1, 40)), max_size=30))
def test_bytes_never_exceed_the_budget_and_match_the_entries(puts: list[tuple[int, int, int]]) -> None:
    cache: PrefixCache[int] = PrefixCache(budget=64, min_tokens=4)
    for start, length, size in puts:
        cache.put(tokens_of(_tokens(start * 50, length)), size, size)
        stats = cache.stats()
        assert stats.bytes <= 64
        assert stats.bytes == sum(e.size for e in cache._entries.values())
        assert stats.entries == len(cache._entries)


def test_counters_of_admitted_prompts() -> None:
    cache: PrefixCache[str] = PrefixCache(budget=0)
    cache.admitted(0)
    cache.admitted(120, restored=True)
    cache.admitted(40, copied=True)
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.tokens_saved, stats.restores, stats.copies) == (2, 1, 160, 1, 1)
    cache.clear()
    assert cache.stats().tokens_saved == 160
