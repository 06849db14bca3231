"""Stop strings in streamed text, whatever the chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vllama.streams import StopText


def stream(chunks: list[str], stops: list[str]) -> tuple[str, bool]:
    s = StopText(stops)
    out = []
    for chunk in chunks:
        out.append(s.feed(chunk))
        if s.stopped:
            return "".join(out), True
    rest = s.flush()
    return "".join(out) + rest, s.stopped


def test_stop_split_across_chunks_is_not_emitted() -> None:
    assert stream(["The cap", "ital of Fr", "ance"], ["ital"]) == ("The cap", True)
    assert stream(["a <|", "end|> b"], ["<|end|>"]) == ("a ", True)


def test_a_partial_match_that_fails_is_released() -> None:
    s = StopText(["STOP"])
    assert s.feed("go ST") == "go "
    assert s.feed("ART") == "START"
    assert s.flush() == ""


@given(st.text(alphabet="abc ", max_size=40), st.lists(st.text(alphabet="abc", min_size=1, max_size=4), max_size=3), st.data())
def test_output_is_the_text_up_to_the_first_stop(text: str, stops: list[str], data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    out, stopped = stream(chunks, stops)
    first = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    assert stopped == (first >= 0)
    assert out == (text[:first] if first >= 0 else text)
