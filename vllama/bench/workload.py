"""What a benchmark sends, and to whom."""

from __future__ import annotations

import functools
import itertools
import random
from typing import Literal
from urllib.parse import urlsplit

import msgspec

Api = Literal["ollama", "openai"]

SHORT_PROMPT = "Write a short story about a robot who learns to paint, in plain prose."

_NOTES = (
    "the morning shipment arrived two hours late because the bridge on the northern road was closed for repairs",
    "inventory counts for the blue ceramic mugs do not match the numbers entered in the spreadsheet last Friday",
    "the new espresso machine needs a descaling cycle every three weeks according to the manual on the shelf",
    "two customers asked whether the shop will stock oat milk again before the end of the month",
    "the heating in the back room switches off at night, so the plants near the window should be moved",
    "a supplier offered a discount on paper cups if the order is placed before the first of next month",
    "the card reader rejected several payments around noon and worked again after it was restarted",
    "weekend staff would like the schedule published at least ten days in advance to plan their studies",
)


@functools.cache
def long_prompt() -> str:
    """About 1,500 tokens of distinct notes and a request to summarize them."""
    notes = "\n".join(f"Note {i + 1}: {_NOTES[i % len(_NOTES)]} (item {i * 7 % 61})." for i in range(48))
    return f"Here are the notes from this week's shop log.\n\n{notes}\n\nSummarize the notes above in a few sentences."


def prompt_text(prompt: str) -> str:
    """The text of a ``--prompt``: ``short``, ``long``, or the text itself."""
    return {"short": SHORT_PROMPT, "long": long_prompt()}.get(prompt, prompt)


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """A server under test: where it is, which API it speaks and which model it runs."""

    name: str
    url: str
    api: Api
    model: str


def default_name(url: str) -> str:
    return urlsplit(url).netloc or url


class Workload(msgspec.Struct, frozen=True, kw_only=True):
    """The requests of one run. Every request's prompt starts with its number, so that no
    server answers from a prompt cache."""

    #: ``short``, ``long`` or the prompt's text.
    prompt: str = "short"
    concurrency: tuple[int, ...] = (1, 8, 32)
    #: Requests per level; None: twice the concurrency, at least 4.
    requests: int | None = None
    stream: bool = True
    num_predict: int = 128
    temperature: float = 0.0
    #: Ask OpenAI-API servers to keep generating past end-of-sequence (``ignore_eos``).
    ignore_eos: bool = True
    warmup: int = 1
    timeout: float = 600.0
    #: Open loop: requests arrive at this mean rate per second (Poisson arrivals), whether or not
    #: earlier ones have finished; a level's concurrency then caps the requests in flight.
    #: None: closed loop, each of ``concurrency`` workers sends its next request when one ends.
    rate: float | None = None
    #: Seeds the open loop's arrival times, so two runs (and two servers) see the same schedule.
    seed: int = 0

    def requests_at(self, concurrency: int) -> int:
        return self.requests if self.requests is not None else max(4, 2 * concurrency)

    def prompt_for(self, index: int) -> str:
        return f"({index}) {prompt_text(self.prompt)}"


def arrival_times(count: int, rate: float, seed: int) -> list[float]:
    """When each of ``count`` requests is sent, in seconds from the start: a Poisson process
    of ``rate`` per second (exponential gaps), the same for the same seed."""
    rng = random.Random(seed)
    return list(itertools.accumulate(rng.expovariate(rate) for _ in range(count)))
