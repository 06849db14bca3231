"""Building blocks for backends that drive their engine from a thread of their own.

* :class:`Channel` carries one request's events from that thread to the asyncio task that
  streams them to the client.
* :class:`StopText` ends streamed text at the first stop string, holding back text that could
  be the start of one.

:mod:`vllama.batching` builds the batch loop, the sequence and the engine on them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeAlias

from vllama.types import Delta, Done

Item: TypeAlias = Delta | Done | BaseException


class Channel:
    """Carries a sequence's events from the engine thread to the asyncio task that consumes them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        #: Resolved once the engine thread has dropped the sequence and freed what it held.
        self.released: asyncio.Future[None] = loop.create_future()

    def send(self, item: Item) -> None:
        """Queue an event for the consumer (engine thread)."""
        self._call(self.queue.put_nowait, item)

    def release(self) -> None:
        """Tell the consumer the sequence is gone (engine thread, last call)."""
        self._call(_resolve, self.released)

    async def events(self, cancel: Callable[[], None]) -> AsyncGenerator[Delta | Done, None]:
        """Yield the sequence's events up to its Done, or raise the error it ends with.

        If the consumer stops early (its client went away), call ``cancel`` and wait until the
        engine thread has released the sequence. Iterate it under ``contextlib.aclosing`` from
        another async generator, so that closing that one closes this one at once.
        """
        done = False
        try:
            while True:
                item = await self.queue.get()
                if isinstance(item, BaseException):
                    done = True
                    raise item
                done = isinstance(item, Done)
                yield item
                if done:
                    return
        finally:
            if not done:
                cancel()
                await asyncio.shield(self.released)

    def _call(self, fn: Callable[[Any], None], arg: Any) -> None:
        try:  # once per token: a plain try costs less than contextlib.suppress
            self.loop.call_soon_threadsafe(fn, arg)
        except RuntimeError:  # the consumer's event loop is closed: nobody is listening
            pass


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class StopText:
    """Streamed text cut at the first stop string.

    Text that could begin a stop string is held back until it is known not to be one; the
    stop string and anything after it are never emitted.
    """

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Add decoded text; return the part that is now safe to emit."""
        text = self._held + text
        self._held = ""
        if not self._stops:
            return text
        cut = self._first_stop(text)
        if cut >= 0:
            # a longer stop string that begins earlier may still complete
            held = self._partial_suffix(text)
            start = len(text) - held
            if held and start < cut:
                self._held = text[start:]
                return text[:start]
            self.stopped = True
            return text[:cut]
        keep = self._partial_suffix(text)
        if keep:
            self._held = text[-keep:]
            return text[:-keep]
        return text

    def flush(self) -> str:
        """What is still held back, at the end of the stream."""
        text, self._held = self._held, ""
        cut = self._first_stop(text)
        if cut >= 0:
            self.stopped = True
            return text[:cut]
        return text

    def _first_stop(self, text: str) -> int:
        """Where the earliest stop string in ``text`` begins; -1 if none is there."""
        return min((i for i in (text.find(s) for s in self._stops) if i >= 0), default=-1)

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that begins some stop string."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best
