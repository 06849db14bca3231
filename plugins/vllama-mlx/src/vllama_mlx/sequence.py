"""One request inside the batch loop: its prompt, sampling, text stream and event channel."""

from __future__ import annotations

import time
from typing import Any

from vllama.streams import Channel, StopText
from vllama.types import Delta, Done, FinishReason, TokenLogprob
from vllama_mlx.sampling import LogitsProcessor, Sampler

class Sequence:
    """A generation in progress. Owned by the loop thread once submitted, except for
    :attr:`cancelled`, which the consumer sets."""

    def __init__(
        self,
        prompt: list[int],
        *,
        sampler: Sampler,
        processors: list[LogitsProcessor],
        detokenizer: Any,
        channel: Channel,
        max_tokens: int,
        ignore_eos: bool,
        stop: list[str],
        top_logprobs: int | None,
    ) -> None:
        self.prompt = prompt
        self.sampler = sampler
        self.processors = processors
        self.max_tokens = max_tokens
        self.ignore_eos = ignore_eos
        #: None: no logprobs; else how many alternatives per token.
        self.top_logprobs = top_logprobs
        self.channel = channel
        self.uid = -1
        self.cancelled = False
        self.generated: list[int] = []
        #: The Done event or error that ends the stream, sent once the batch has dropped it.
        self.final: Done | BaseException | None = None
        self._detokenizer = detokenizer
        self._text = StopText(stop)
        self._logprobs: list[TokenLogprob] = []
        self._t_start = 0
        self._t_first = 0

    @property
    def finished(self) -> bool:
        return self.final is not None

    def started(self) -> None:
        self._t_start = time.perf_counter_ns()

    def accept(self, token: int, finish_reason: str | None, logprob: TokenLogprob | None) -> None:
        """Take a generated token and mlx-lm's finish reason ("stop": an end token)."""
        if not self._t_first:
            self._t_first = time.perf_counter_ns()
        if finish_reason == "stop":  # the end-of-sequence token itself is not output
            self.finish("stop")
            return
        self.generated.append(token)
        if logprob is not None:
            self._logprobs.append(logprob)
        self._detokenizer.add_token(token)
        text = self._text.feed(self._detokenizer.last_segment)
        if self._text.stopped:
            if logprob is not None:  # the token that completed the stop string is not output
                self._logprobs.pop()
            self._send(text)
            self.finish("stop", flush=False)
            return
        self._send(text)
        if finish_reason == "length":
            self.finish("length")

    def finish(self, reason: FinishReason, *, flush: bool = True) -> None:
        """Send the text still held back; the Done event follows when the loop drops the sequence."""
        if flush:
            self._detokenizer.finalize()
            self._send(self._text.feed(self._detokenizer.last_segment) + self._text.flush())
        end = time.perf_counter_ns()
        first = self._t_first or end
        self.final = Done(
            reason=reason,
            prompt_tokens=len(self.prompt),
            completion_tokens=len(self.generated),
            prompt_eval_ns=first - (self._t_start or first),
            eval_ns=end - first,
            context=self.prompt + self.generated,
        )

    def fail(self, error: BaseException) -> None:
        self.final = error

    def release(self) -> None:
        """Send the final event and tell the consumer the sequence is gone (loop thread)."""
        if self.final is not None:
            self.channel.send(self.final)
        self.channel.release()

    def _send(self, text: str) -> None:
        if text or self._logprobs:
            self.channel.send(Delta(text=text, logprobs=self._logprobs))
            self._logprobs = []
