"""Streaming text: UTF-8 across tokens and stop strings held back."""

from __future__ import annotations

from vllama_llamacpp.text import TextStream


def run(stream: TextStream, pieces: list[bytes]) -> list[str]:
    out = [stream.feed(p) for p in pieces]
    if not stream.stopped:
        out.append(stream.flush())
    return out


def test_multibyte_character_split_across_tokens() -> None:
    data = "é€😀".encode()
    out = run(TextStream([]), [data[i : i + 1] for i in range(len(data))])
    assert "".join(out) == "é€😀"
    assert all(part in ("", "é", "€", "😀") for part in out)


def test_stop_string_is_not_emitted() -> None:
    stream = TextStream(["STOP"])
    out = run(stream, [b"hello S", b"TO", b"P and more"])
    assert "".join(out) == "hello "
    assert stream.stopped


def test_partial_stop_is_held_back_then_released() -> None:
    stream = TextStream(["</end>"])
    assert stream.feed(b"a </") == "a "
    assert stream.feed(b"en") == ""
    assert stream.feed(b"x") == "</enx"
    assert stream.flush() == ""


def test_held_text_is_flushed_at_the_end() -> None:
    stream = TextStream(["###"])
    assert stream.feed(b"done #") == "done "
    assert stream.flush() == "#"


def test_earliest_of_several_stops_wins() -> None:
    stream = TextStream(["world", "lo"])
    assert stream.feed(b"hello world") == "hel"
    assert stream.stopped
