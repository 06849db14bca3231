"""A toolkit for text engines that drive their library from a thread of their own.

One thread owns the model and runs the batch step by step; the asyncio tasks that stream
replies hand sequences to it and read their events back through a
:class:`~vllama.streams.Channel`. The parts:

* :class:`Sequence`: one request in the batch: its prompt, limits, stop strings, logprobs and
  timings, and the hand-off of its events (text as it comes, the final ``Done`` or error once
  the loop has freed it).
* :class:`BatchLoop`: the thread: submit, cancel, :meth:`~BatchLoop.call` (run work on that
  thread), stop; the wait-and-step loop; freeing a sequence when it finishes; a step that
  raises fails the sequences in the batch, never the thread.
* :class:`BatchEngine`: the :class:`~vllama.engine.Engine` around them: request to prompt,
  prompt to sequence, sequence to stream.

An engine subclasses each and gives only what is its library's: the model load, one step,
tokenize and detokenize, and sampling.
"""

from __future__ import annotations

import abc
import asyncio
import bisect
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ClassVar, Generic, TypeVar

from vllama import truncation
from vllama.engine import Engine
from vllama.errors import ContextOverflow, EngineError
from vllama.streams import Channel, StopText
from vllama.thinking import Splitter, ThinkingFormat, splitter
from vllama.types import (
    ChatRequest,
    Delta,
    Done,
    EngineInfo,
    EventStream,
    FinishReason,
    GenerateRequest,
    LoadSettings,
    ModelRef,
    PrefixCacheStats,
    TokenLogprob,
)

log = logging.getLogger("vllama.batching")

T = TypeVar("T")
#: Prompt tokens enough to hold the opening of a thinking section.
_PROMPT_END = 16
S = TypeVar("S", bound="Sequence")


class Sequence(abc.ABC):
    """One request in a batch. Owned by the loop thread once submitted, except for
    :attr:`cancelled`, which the consumer sets.

    A subclass gives :meth:`detokenize`, and may extend :meth:`detokenize_rest` (text still held
    by its decoder at the end), :meth:`at_limit` (more reasons to end with ``"length"``) and
    :meth:`free` (per-request native state, such as a sampler).
    """

    def __init__(
        self,
        prompt: list[int],
        *,
        sampler: Any = None,
        max_tokens: int = -1,
        ignore_eos: bool = False,
        stop: list[str] | None = None,
        top_logprobs: int | None = None,
        channel: Channel | None = None,
    ) -> None:
        self.prompt = prompt
        #: The engine's per-request sampler (None: the engine's default, e.g. plain greedy).
        self.sampler = sampler
        #: Tokens to generate at most; 0: evaluate the prompt only; negative: no limit.
        self.max_tokens = max_tokens
        self.ignore_eos = ignore_eos
        #: None: no logprobs; else how many alternatives per token.
        self.top_logprobs = top_logprobs
        #: Where the events go; a new one on the running event loop by default.
        self.channel = channel if channel is not None else Channel(asyncio.get_running_loop())
        #: The engine's id for the sequence (a KV sequence id, a batch uid); the batch runs in its order.
        self.id = -1
        self.generated: list[int] = []
        self.cancelled = False
        #: The Done event or error that ends the stream, sent once the loop has freed the sequence.
        self.final: Done | BaseException | None = None
        self.text = StopText(stop or [])
        #: Splits the reply into thinking and answer when the request thinks (set by the engine).
        self.thinking: Splitter | None = None
        #: Messages of the chat left out to fit the context (set by the engine).
        self.dropped_messages = 0
        self._logprobs: list[TokenLogprob] = []
        self._t_start = 0
        self._t_first = 0

    # -- what an engine gives ----------------------------------------------------------------

    @abc.abstractmethod
    def detokenize(self, token: int) -> str:
        """The text ``token`` adds to the reply (incremental: a split character comes whole, later)."""

    def detokenize_rest(self) -> str:
        """Text the detokenizer still holds at the end of the reply."""
        return ""

    def at_limit(self) -> bool:
        """Whether the reply has reached its length (after a token was output)."""
        return 0 < self.max_tokens <= len(self.generated)

    def free(self) -> None:  # an optional hook
        """Free the engine's per-request state (loop thread, or the consumer if never submitted)."""

    # -- the hand-off ------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.final is not None

    def tokens(self) -> list[int]:
        """The prompt and the reply so far."""
        return self.prompt + self.generated

    def started(self) -> None:
        """Mark the start of the prompt's evaluation (the first call counts)."""
        if not self._t_start:
            self._t_start = time.perf_counter_ns()

    def accept(self, token: int, logprob: TokenLogprob | None = None, *, end: bool = False, last: bool = False) -> None:
        """Take a generated token: stream its text, or finish the sequence.

        ``end``: the token ends the reply (an end-of-generation token) and is not output;
        ``last``: the engine generates no more for this sequence (its own length limit).
        """
        if not self._t_first:
            self._t_first = time.perf_counter_ns()
            if self.max_tokens == 0:
                self.finish("length")
                return
        if end:
            self.finish("stop")
            return
        self.generated.append(token)
        if logprob is not None:
            self._logprobs.append(logprob)
        text = self.text.feed(self.detokenize(token))
        if self.text.stopped:
            if logprob is not None:  # the token that completed the stop string is not output
                self._logprobs.pop()
            self._send(text)
            self.finish("stop", flush=False)
            return
        if text:
            self._send(text)
        if last or self.at_limit():
            self.finish("length")

    def finish(self, reason: FinishReason, *, flush: bool = True) -> None:
        """Send the text still held back; the Done event follows when the loop frees the sequence."""
        if flush:
            self._send(self.text.feed(self.detokenize_rest()) + self.text.flush())
        if self.thinking is not None:
            self._send_split(*self.thinking.flush())
        end = time.perf_counter_ns()
        first = self._t_first or end
        self.final = Done(
            reason=reason,
            prompt_tokens=len(self.prompt),
            completion_tokens=len(self.generated),
            prompt_eval_ns=first - (self._t_start or first),
            eval_ns=end - first,
            context=self.tokens(),
            dropped_messages=self.dropped_messages,
        )

    def fail(self, error: BaseException) -> None:
        """End the stream with ``error`` (sent when the loop frees the sequence)."""
        self.final = error

    def release(self) -> None:
        """Free the sequence, send its final event and tell the consumer it is gone (loop
        thread, once the engine holds nothing of it)."""
        self.free()
        if self.final is not None:
            self.channel.send(self.final)
        self.channel.release()

    def _send(self, text: str) -> None:
        if self.thinking is not None:
            self._send_split(*self.thinking.feed(text))
        elif text or self._logprobs:
            self.channel.send(Delta(text=text, logprobs=self._logprobs))
            self._logprobs = []

    def _send_split(self, thinking: str, text: str) -> None:
        if thinking or text or self._logprobs:
            self.channel.send(Delta(text=text, thinking=thinking, logprobs=self._logprobs))
            self._logprobs = []


def _by_id(seq: Sequence) -> int:
    return seq.id


class BatchLoop(abc.ABC, Generic[S]):
    """The thread that owns an engine's model and serves every sequence from it.

    Sequences go ``submit`` -> :attr:`waiting` -> :meth:`admit` -> :attr:`running` (kept in
    ``id`` order) -> :meth:`leave`. Each turn of the loop runs the queued :meth:`call` jobs,
    drops cancelled sequences, admits waiting ones while :meth:`has_room`, runs one
    :meth:`step` and frees the sequences that finished in it. A subclass gives :meth:`admit`
    and :meth:`step`, and may extend :meth:`setup`, :meth:`teardown`, :meth:`has_room`,
    :meth:`on_leave`, :meth:`drop` and :meth:`recover`. Call :meth:`start` once it is built.
    """

    #: The engine's name in error messages ("llama.cpp engine error: ...").
    label: ClassVar[str] = "engine"

    def __init__(self, *, name: str) -> None:
        #: Admitted sequences, in ``id`` order (loop thread).
        self.running: list[S] = []
        #: Submitted sequences not admitted yet (loop thread).
        self.waiting: deque[S] = deque()
        self._cond = threading.Condition()
        self._incoming: deque[S] = deque()
        self._jobs: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._stopping = False
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- any thread --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread; block until :meth:`setup` is done and re-raise its error."""
        self._thread.start()
        self._ready.result()

    @property
    def active(self) -> int:
        """Sequences admitted to the batch."""
        return len(self.running)

    def submit(self, seq: S) -> None:
        """Queue ``seq``; it joins the batch between two steps."""
        with self._cond:
            if self._stopping:
                raise EngineError("the model is being unloaded")
            self._incoming.append(seq)
            self._cond.notify()

    def cancel(self, seq: S) -> None:
        """Drop ``seq`` before the next step (its consumer went away)."""
        with self._cond:
            seq.cancelled = True
            self._cond.notify()

    def call(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the loop thread between two steps."""
        future: Future[T] = Future()
        with self._cond:
            if self._stopping:
                raise EngineError("the model is being unloaded")
            self._jobs.append((fn, future))
            self._cond.notify()
        return future

    def stop(self) -> None:
        """Fail what is left, end the thread and free what it holds (blocking)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()

    # -- what an engine gives (loop thread) -------------------------------------------------

    def setup(self) -> None:
        """Prepare the thread before it serves (e.g. load the model where it will run)."""

    def teardown(self) -> None:
        """Free what the loop holds, after every sequence has been failed and freed."""

    def has_room(self) -> bool:
        """Whether another waiting sequence can be admitted now."""
        return True

    @abc.abstractmethod
    def admit(self, seq: S) -> None:
        """Start ``seq`` in the batch and set its ``id``. An error fails ``seq`` alone."""

    @abc.abstractmethod
    def step(self) -> None:
        """Run one step over :attr:`running`: each sequence :meth:`~Sequence.accept` s a
        token or finishes. A sequence that fails alone: ``fail`` it and :meth:`leave` it."""

    def on_leave(self, seq: S, *, keep_cache: bool) -> None:
        """Free the engine's state for ``seq`` as it leaves the batch; with ``keep_cache`` it
        finished normally, and its cache may serve a later prompt."""

    def drop(self, seqs: list[S]) -> None:
        """Take cancelled sequences out of the batch."""
        for seq in seqs:
            self.leave(seq, keep_cache=False)

    def recover(self) -> None:
        """Make the engine usable again after a step failed (the batch is empty by then)."""

    # -- the toolkit (loop thread) ----------------------------------------------------------

    def leave(self, seq: S, *, keep_cache: bool) -> None:
        """Take ``seq`` out of the batch, free it, and hand its final event to the consumer."""
        self.running.remove(seq)
        self.on_leave(seq, keep_cache=keep_cache)
        seq.release()

    def _run(self) -> None:
        try:
            self.setup()
        except BaseException as e:  # handed to the thread that waits in start()
            with self._cond:
                self._stopping = True
            self._ready.set_exception(e)
            return
        self._ready.set_result(None)
        try:
            self._serve()
        finally:
            self._shutdown()
            self.teardown()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not (self._stopping or self._incoming or self._jobs or self.running or self.waiting):
                    self._cond.wait()
                if self._stopping:
                    return
                self.waiting.extend(self._incoming)
                self._incoming.clear()
                jobs = list(self._jobs)
                self._jobs.clear()
            for fn, future in jobs:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn())
                    except BaseException as e:  # the caller gets it
                        future.set_exception(e)
            try:
                self._drop_cancelled()
                self._admit()
                if self.running:
                    self.step()
                    for seq in [s for s in self.running if s.finished]:
                        self.leave(seq, keep_cache=True)
            except Exception as e:  # never let one bad step kill the thread that serves everyone
                log.exception("%s batch step failed", self.label)
                failed = list(self.running)
                for seq in failed:
                    seq.fail(EngineError(f"{self.label} engine error: {e}"))
                    self.running.remove(seq)
                    self.on_leave(seq, keep_cache=False)
                self.recover()  # before the consumers hear of it: their next request finds it usable
                for seq in failed:
                    seq.release()

    def _drop_cancelled(self) -> None:
        if any(s.cancelled for s in self.waiting):
            for seq in [s for s in self.waiting if s.cancelled]:
                self.waiting.remove(seq)
                seq.release()
        cancelled = [s for s in self.running if s.cancelled]
        if cancelled:
            self.drop(cancelled)

    def _admit(self) -> None:
        while self.waiting and self.has_room():
            seq = self.waiting.popleft()
            try:
                self.admit(seq)
            except Exception as e:  # this request fails, the others go on
                log.exception("%s could not start a sequence", self.label)
                seq.fail(EngineError(f"{self.label} engine error: {e}"))
                seq.release()
                continue
            bisect.insort(self.running, seq, key=_by_id)

    def _shutdown(self) -> None:
        with self._cond:
            pending = [*self._incoming, *self.waiting, *self.running]
            jobs = list(self._jobs)
            self._incoming.clear()
            self._jobs.clear()
        self.waiting.clear()
        self.running.clear()
        for seq in pending:
            if not seq.finished:
                seq.fail(EngineError("the model was unloaded"))
            seq.release()
        for _, future in jobs:
            if future.set_running_or_notify_cancel():
                future.set_exception(EngineError("the model was unloaded"))


class BatchEngine(Engine, Generic[S]):
    """An engine served by a :class:`BatchLoop`.

    A subclass calls ``super().__init__(ref, settings)``, sets :attr:`loop` (started) and gives
    :meth:`generate_prompt` and :meth:`chat_prompt` (the request as token ids),
    :meth:`prompt_text` and :meth:`sequence` (a :class:`Sequence` with the request's
    sampling); ``info`` (see :meth:`engine_info`) and ``close`` stay its own. A reply to a
    request that thinks is split into thinking and answer in the :attr:`thinking_format` of
    the model's template (set it where the template is known).
    """

    loop: BatchLoop[S]
    #: How the model marks its thinking (:func:`vllama.thinking.thinking_format` of its template).
    thinking_format: ThinkingFormat | None = None

    def __init__(self, ref: ModelRef, settings: LoadSettings) -> None:
        self.name = ref.name
        self.ref = ref
        #: Context length per sequence, and sequences at once.
        self.n_ctx = settings.num_ctx
        self.parallel = max(1, settings.parallel)

    @property
    def active_sequences(self) -> int:
        """Sequences admitted to the batch."""
        return self.loop.active

    def generate(self, request: GenerateRequest) -> EventStream:
        return self._stream(lambda: truncation.Fitted(self.generate_prompt(request)), request)

    def chat(self, request: ChatRequest) -> EventStream:
        return self._stream(lambda: truncation.fit(request, self.chat_prompt, len, self.n_ctx), request)

    @abc.abstractmethod
    def generate_prompt(self, request: GenerateRequest) -> list[int]:
        """The token ids of a generate request (raise ``Unsupported`` for what the model cannot do)."""

    @abc.abstractmethod
    def chat_prompt(self, request: ChatRequest) -> list[int]:
        """The token ids of a chat request, through the model's chat template."""

    def thinks(self, request: GenerateRequest | ChatRequest) -> bool:
        """Whether the reply to ``request`` is split into thinking and answer: the request
        thinks, the model marks its thinking, and the prompt went through its template."""
        raw = isinstance(request, GenerateRequest) and request.raw
        return bool(request.think) and self.thinking_format is not None and not raw

    @abc.abstractmethod
    def prompt_text(self, tokens: list[int]) -> str:
        """The text of prompt tokens, special tokens included (the end of a prompt tells
        whether the template opened a thinking tag)."""

    @abc.abstractmethod
    def sequence(self, prompt: list[int], request: GenerateRequest | ChatRequest) -> S:
        """A new sequence for ``prompt`` (fits the context), with the request's sampling.

        One already finished (``finish`` called) is not submitted: its ``Done`` comes at once.
        """

    async def _stream(self, prepare: Callable[[], truncation.Fitted[list[int]]], request: GenerateRequest | ChatRequest) -> EventStream:
        fitted = prepare()
        prompt = fitted.prompt
        if not prompt:
            yield Done(reason="stop")
            return
        if len(prompt) > self.n_ctx:
            raise ContextOverflow("the input length exceeds the context length")
        seq = self.sequence(prompt, request)
        seq.dropped_messages = fitted.dropped
        if self.thinks(request):
            seq.thinking = splitter(self.thinking_format, request.think, self.prompt_text(prompt[-_PROMPT_END:]))
        if seq.finished:
            seq.release()
        else:
            try:
                self.loop.submit(seq)
            except BaseException:
                seq.free()
                raise
        async with contextlib.aclosing(seq.channel.events(lambda: self.loop.cancel(seq))) as events:
            async for event in events:
                yield event

    def engine_info(self, size: int, *, on_device: bool, info: dict[str, Any], prefix_cache: PrefixCacheStats | None = None) -> EngineInfo:
        """What ``info()`` reports: ``size`` bytes held (all on the accelerator with
        ``on_device``), the context and parallelism, the engine's own ``info`` keys and its
        prefix cache's counters."""
        size_vram = size if on_device else 0
        return EngineInfo(
            size=size, size_vram=size_vram, context_length=self.n_ctx, parallel=self.parallel, info=info, prefix_cache=prefix_cache
        )


def top_logprobs(request: GenerateRequest | ChatRequest) -> int | None:
    """How many alternatives a request wants with each token's logprob; None for no logprobs."""
    return max(0, request.top_logprobs) if request.logprobs or request.top_logprobs else None
