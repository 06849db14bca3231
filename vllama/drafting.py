"""Prompt lookup: draft tokens for speculative decoding from the sequence's own tokens.

A reply that copies its input (code edits, summaries, quotes) repeats spans of the prompt: when
the last few tokens occurred before, the tokens that followed them then are a good guess for
what follows now. An engine decodes the guesses with the next token in one batch and keeps those
its own greedy choice confirms, so the reply is the same as without drafts.
"""

from __future__ import annotations

from array import array

#: N-gram sizes tried, longest first: a longer match is a better predictor.
NGRAM_SIZES = (4, 3, 2)
_ITEM = array("i").itemsize


def prompt_lookup(history: array[int], max_tokens: int, sizes: tuple[int, ...] = NGRAM_SIZES) -> list[int]:
    """Up to ``max_tokens`` tokens that followed the latest earlier occurrence of the last
    n tokens of ``history`` (the largest n of ``sizes`` that occurred before); [] if none did."""
    if max_tokens <= 0:
        return []
    data = history.tobytes()
    n = len(history)
    for size in sizes:
        if n <= size:
            continue
        pattern = data[(n - size) * _ITEM :]
        end = (n - 1) * _ITEM  # the match ends before the last token: not the suffix itself
        at = data.rfind(pattern, 0, end)
        while at != -1 and at % _ITEM:  # a match that straddles tokens' bytes
            at = data.rfind(pattern, 0, at + len(pattern) - 1)
        if at != -1:
            start = at // _ITEM + size
            return history[start : start + max_tokens].tolist()
    return []
