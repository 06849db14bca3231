"""The llama.cpp sequence's text: a character whose UTF-8 bytes span tokens is emitted once
whole, and stop strings are held back by the toolkit."""

from __future__ import annotations

import asyncio

from vllama.streams import Channel
from vllama_llamacpp.sequence import Sequence


class Bytes:
    """A stand-in vocabulary: token i is the i-th byte of ``data`` (what model.piece gives)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def piece(self, token: int, *, special: bool = False) -> bytes:
        return self.data[token : token + 1]

    def is_eog(self, token: int) -> bool:
        return False


async def texts(data: bytes, stop: list[str]) -> list[str]:
    seq = Sequence(Bytes(data), [0], n_ctx=4096, stop=stop, channel=Channel(asyncio.get_running_loop()))
    out = []
    for token in range(len(data)):
        out.append(seq.text.feed(seq.detokenize(token)))
        if seq.text.stopped:  # the sequence ends here
            return out
    return [*out, seq.text.flush() + seq.detokenize_rest()]


def test_a_multibyte_character_split_across_tokens_comes_out_whole() -> None:
    out = asyncio.run(texts("é€😀".encode(), []))
    assert "".join(out) == "é€😀"
    assert all(part in ("", "é", "€", "😀") for part in out)


def test_a_stop_string_split_across_tokens_is_not_emitted() -> None:
    assert "".join(asyncio.run(texts(b"hello STOP and more", ["STOP"]))) == "hello "
