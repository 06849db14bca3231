"""Streaming text: token bytes to valid UTF-8 deltas, with stop strings held back."""

from __future__ import annotations

import codecs

from vllama.streams import StopText


class TextStream:
    """Turns token bytes into text deltas and ends the stream at the first stop string.

    A multi-byte character split across tokens is emitted once complete; stop strings are
    handled by :class:`~vllama.streams.StopText`.
    """

    def __init__(self, stops: list[str]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = StopText(stops)

    @property
    def stopped(self) -> bool:
        """Whether a stop string has been seen."""
        return self._stops.stopped

    def feed(self, data: bytes) -> str:
        """Add a token's bytes; return the text that is now safe to emit."""
        return self._stops.feed(self._decoder.decode(data))

    def flush(self) -> str:
        """The text still held back, at the end of the stream."""
        return self._stops.flush() + self._decoder.decode(b"", final=True)
