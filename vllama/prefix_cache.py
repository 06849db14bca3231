"""Prompt states kept in host memory after their sequences have left, found again by the
longest common token prefix, so that a returning conversation or a shared system prompt is
not prefilled again.

An engine saves a state (whatever its library restores: llama.cpp's sequence state bytes, an
mlx-lm prompt cache) with the tokens it holds, and on a new prompt asks for the entry that
shares the longest prefix with it. Entries are bounded in bytes and evicted least recently
used; an entry whose tokens begin another, newer one is dropped, since the newer one serves
every prompt it would.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import msgspec

from vllama.types import PrefixCacheStats

T = TypeVar("T")

#: Shorter prefixes are prefilled faster than they are saved and found.
MIN_TOKENS = 32


def tokens_of(tokens: Sequence[int]) -> array[int]:
    """Token ids packed for fast prefix comparison."""
    return array("i", tokens)


def common_prefix(a: array[int], b: array[int]) -> int:
    """The number of leading tokens ``a`` and ``b`` share (a binary search over slice
    comparisons, which run in C)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(eq=False)
class CachedPrefix(Generic[T]):
    """A saved state and the tokens whose cache it holds."""

    tokens: array[int]
    state: T
    size: int


@dataclass
class PrefixCache(Generic[T]):
    """Saved states within ``budget`` bytes (0: keep none), least recently used first out.
    Safe to read from any thread; an engine saves and restores from its own."""

    budget: int
    min_tokens: int = MIN_TOKENS
    _entries: OrderedDict[int, CachedPrefix[T]] = field(default_factory=OrderedDict)
    _stats: PrefixCacheStats = field(default_factory=PrefixCacheStats)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._stats.budget_bytes = self.budget

    def worth_saving(self, n_tokens: int, size: int) -> bool:
        """Whether a state of ``n_tokens`` tokens and ``size`` bytes may be kept."""
        return n_tokens >= self.min_tokens and 0 < size <= self.budget

    def longest(self, prompt: array[int]) -> tuple[CachedPrefix[T] | None, int]:
        """The entry sharing the longest prefix with ``prompt``, and that length; marks it
        recently used. (None, 0) when none shares ``min_tokens``."""
        best: CachedPrefix[T] | None = None
        best_common = 0
        with self._lock:
            for entry in self._entries.values():
                common = common_prefix(entry.tokens, prompt)
                if common > best_common:
                    best, best_common = entry, common
            if best is None or best_common < self.min_tokens:
                return None, 0
            self._entries.move_to_end(id(best))
        return best, best_common

    def covers(self, tokens: array[int]) -> bool:
        """Whether an entry already holds every token of ``tokens`` (saving it adds nothing)."""
        with self._lock:
            return any(len(e.tokens) >= len(tokens) and e.tokens[: len(tokens)] == tokens for e in self._entries.values())

    def put(self, tokens: array[int], state: T, size: int) -> None:
        """Keep ``state`` for ``tokens``, evicting the least recently used entries to make
        room; entries that ``tokens`` extends are dropped."""
        if not self.worth_saving(len(tokens), size):
            return
        entry = CachedPrefix(tokens, state, size)
        with self._lock:
            for key, old in list(self._entries.items()):
                if len(old.tokens) <= len(tokens) and tokens[: len(old.tokens)] == old.tokens:
                    self._remove(key)
            while self._entries and self._stats.bytes + size > self.budget:
                self._remove(next(iter(self._entries)))
                self._stats.evictions += 1
            self._entries[id(entry)] = entry
            self._stats.entries += 1
            self._stats.bytes += size

    def admitted(self, reused: int, *, restored: bool = False, copied: bool = False) -> None:
        """Count one admitted prompt whose first ``reused`` tokens came from a cache."""
        with self._lock:
            self._stats.admitted(reused, restored=restored, copied=copied)

    def stats(self) -> PrefixCacheStats:
        """A copy of the counters."""
        with self._lock:
            return msgspec.structs.replace(self._stats)

    def clear(self) -> None:
        """Drop every entry (the engine's cache was reset)."""
        with self._lock:
            for key in list(self._entries):
                self._remove(key)

    def _remove(self, key: int) -> None:
        entry = self._entries.pop(key)
        self._stats.entries -= 1
        self._stats.bytes -= entry.size
