"""What a benchmark sends, and to whom."""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from vllama.bench import texts

Api = Literal["ollama", "openai"]
#: ``plain``: numbered copies of one prompt; ``sessions``: multi-turn conversations;
#: ``shared-prefix``: one long system prompt and tools before short questions; ``rag``: long
#: contexts of their own and short answers.
Kind = Literal["plain", "sessions", "shared-prefix", "rag"]
KINDS: tuple[Kind, ...] = ("plain", "sessions", "shared-prefix", "rag")
#: The words of the ``sessions`` system prompt (about 360 tokens).
SESSION_SYSTEM_WORDS = 300
#: The tokens of each ``rag`` request's context.
RAG_TOKENS = 1500
#: ``--num-predict`` when not given: ``rag`` answers are short.
NUM_PREDICT = {"rag": 32}

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


class Message(msgspec.Struct, frozen=True):
    role: str
    content: str


class Chat(msgspec.Struct, frozen=True, kw_only=True):
    """One request: its messages and the tools it offers (OpenAI's and Ollama's ``tools``)."""

    messages: tuple[Message, ...]
    tools: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(cls, prompt: str) -> Chat:
        return cls(messages=(Message("user", prompt),))


def conversation(system: str, questions: Sequence[str], replies: Sequence[str]) -> tuple[Message, ...]:
    """The messages of a conversation's next turn: the system prompt, every earlier question with
    the reply it got, then the last question (so one reply fewer than questions)."""
    if len(replies) != len(questions) - 1:
        raise ValueError("a turn needs one reply fewer than questions")
    turns = (m for q, r in zip(questions, replies, strict=False) for m in (Message("user", q), Message("assistant", r)))
    return (Message("system", system), *turns, Message("user", questions[-1]))


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """A server under test: where it is, which API it speaks and which model it runs."""

    name: str
    url: str
    api: Api
    model: str


def default_name(url: str) -> str:
    return urlsplit(url).netloc or url


class Workload(msgspec.Struct, frozen=True, kw_only=True):
    """The requests of one run. Every request is numbered, so that no server answers it from a
    prompt cache, except for the parts the workload shares on purpose (a system prompt, tools)."""

    #: What the requests are (:data:`Kind`).
    kind: Kind = "plain"
    #: ``plain``: ``short``, ``long`` or the prompt's text.
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
    #: Seeds the open loop's arrival times and the generated texts, so two runs (and two servers)
    #: see the same schedule and the same requests.
    seed: int = 0
    #: ``sessions``: the conversations at each level, all at once.
    users: int = 16
    #: ``sessions``: the requests of each conversation.
    turns: int = 3
    #: ``sessions``: seconds between a reply and the user's next message.
    think_time: float = 1.0
    #: ``shared-prefix``: the system prompt's length in estimated tokens (:mod:`.texts`).
    prefix_tokens: int = 1000
    #: ``shared-prefix``: offer the tools with every request (off for a model without tool calling).
    tools: bool = True

    def requests_at(self, concurrency: int) -> int:
        if self.kind == "sessions":
            return self.users * self.turns
        return self.requests if self.requests is not None else max(4, 2 * concurrency)

    def prompt_for(self, index: int) -> str:
        return f"({index}) {prompt_text(self.prompt)}"

    def chat_for(self, index: int) -> Chat:
        """Request ``index`` of ``plain``, ``shared-prefix`` and ``rag``; of ``sessions``, the first
        turn of user ``index`` (the warm-up)."""
        if self.kind == "sessions":
            return Chat(messages=conversation(self.session_system(), [self.question(index, 1)], []))
        if self.kind == "shared-prefix":
            return Chat(
                messages=(Message("system", self.shared_prefix()), Message("user", texts.question(self.seed, index))),
                tools=texts.TOOLS if self.tools else (),
            )
        if self.kind == "rag":
            return Chat.of(rag_prompt(self.seed, index))
        return Chat.of(self.prompt_for(index))

    def session_system(self) -> str:
        return texts.system_prompt(self.seed, SESSION_SYSTEM_WORDS)

    def shared_prefix(self) -> str:
        return texts.system_prompt(self.seed, texts.words_for(self.prefix_tokens))

    def describe(self) -> str:
        """The workload in a few words, for the table's and the chart's captions."""
        if self.kind == "sessions":
            return f"sessions of {self.users} users × {self.turns} turns, think time {self.think_time:g} s"
        if self.kind == "shared-prefix":
            tools = f" and {len(texts.TOOLS)} tools" if self.tools else ""
            return f"shared-prefix: a ~{self.prefix_tokens}-token system prompt{tools}"
        if self.kind == "rag":
            return f"rag: ~{RAG_TOKENS}-token contexts"
        return f"prompt {self.prompt if self.prompt in ('short', 'long') else 'custom'}"

    def question(self, user: int, turn: int) -> str:
        """What user ``user`` says at ``turn`` (from 1) of a session."""
        return texts.opening(self.seed, user) if turn == 1 else texts.follow_up(self.seed, user, turn)


def rag_prompt(seed: int, index: int) -> str:
    """About :data:`RAG_TOKENS` of passages of the request's own and a question on them."""
    head = "Answer the question using only the documents below, in one or two sentences."
    words = texts.words_for(RAG_TOKENS) - len(head.split()) - 20  # 20: the question and its label
    return f"{head}\n\n{texts.documents(seed, index, words)}\n\nQuestion: {texts.question(seed, index)}"


def session_starts(users: int, think_time: float) -> list[float]:
    """When each user of a session level sends its first message, in seconds from the level's
    start: spread evenly over one think time, so that first turns do not all land at once."""
    return [think_time * u / users for u in range(users)]


def arrival_times(count: int, rate: float, seed: int) -> list[float]:
    """When each of ``count`` requests is sent, in seconds from the start: a Poisson process
    of ``rate`` per second (exponential gaps), the same for the same seed."""
    rng = random.Random(seed)
    return list(itertools.accumulate(rng.expovariate(rate) for _ in range(count)))
