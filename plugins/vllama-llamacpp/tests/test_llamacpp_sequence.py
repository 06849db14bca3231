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


async def test_prompt_chunks_go_to_the_oldest_prompt_first() -> None:
    from vllama_llamacpp.batch_loop import prefill_plan

    def prefilling(slot: int, order: int, prompt: int, done: int = 0) -> Sequence:
        seq = Sequence(Bytes(b""), list(range(prompt)), n_ctx=4096)
        seq.id, seq.order, seq.n_past = slot, order, done
        return seq

    older, newer = prefilling(slot=2, order=1, prompt=300, done=100), prefilling(slot=0, order=5, prompt=300)
    generating = prefilling(slot=1, order=0, prompt=10, done=10)
    running = [newer, generating, older]  # in slot order, as the loop keeps them
    assert prefill_plan(running, 150) == {2: 150}, "the newer prompt in a lower slot waits"
    assert prefill_plan(running, 250) == {2: 200, 0: 50}
    newer.share_from = older  # waits to copy the older one's cells instead of computing them
    assert prefill_plan(running, 500) == {2: 200}
