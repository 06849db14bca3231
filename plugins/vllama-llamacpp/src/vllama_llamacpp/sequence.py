"""One request inside the batch loop: its tokens, sampler, text stream and event channel."""

from __future__ import annotations

import time
from typing import Any

from vllama.streams import Channel
from vllama.types import Delta, Done, FinishReason, TokenLogprob
from vllama_llamacpp.native import Model
from vllama_llamacpp.sampling import free_chain
from vllama_llamacpp.text import TextStream

class Sequence:
    """A generation in progress. Owned by the loop thread once submitted, except for
    :attr:`cancelled`, which the consumer sets."""

    def __init__(
        self,
        model: Model,
        prompt: list[int],
        chain: Any,
        channel: Channel,
        *,
        num_predict: int,
        ignore_eos: bool = False,
        stop: list[str],
        n_ctx: int,
        top_logprobs: int | None,
    ) -> None:
        self.model = model
        self.prompt = prompt
        self.chain = chain
        self.channel = channel
        self.num_predict = num_predict
        self.ignore_eos = ignore_eos
        self.n_ctx = n_ctx
        #: None: no logprobs; else how many alternatives per token.
        self.top_logprobs = top_logprobs
        self.text = TextStream(stop)
        self.generated: list[int] = []
        self.seq_id = -1
        #: Tokens of prompt + reply whose KV cells are in the cache.
        self.n_past = 0
        #: Sampled, not yet decoded.
        self.next_token: int | None = None
        self.batch_index = -1
        self.n_in_batch = 0
        self.cancelled = False
        #: The Done event or error that ends the stream, sent once the sequence is freed.
        self.final: Done | BaseException | None = None
        self._logprobs: list[TokenLogprob] = []
        self._t_start = 0
        self._t_first = 0

    @property
    def finished(self) -> bool:
        return self.final is not None

    @property
    def prefilling(self) -> bool:
        return self.n_past < len(self.prompt)

    def tokens(self) -> list[int]:
        return self.prompt + self.generated

    def started(self) -> None:
        if not self._t_start:
            self._t_start = time.perf_counter_ns()

    def accept(self, token: int, logprob: TokenLogprob | None) -> None:
        """Take a sampled token: stream its text, or finish the sequence."""
        if not self._t_first:
            self._t_first = time.perf_counter_ns()
            if self.num_predict == 0:
                self.finish("length")
                return
        if self.model.is_eog(token) and not self.ignore_eos:
            self.finish("stop")
            return
        self.generated.append(token)
        if logprob is not None:
            self._logprobs.append(logprob)
        text = self.text.feed(self.model.piece(token))
        if self.text.stopped:
            if logprob is not None:  # the token that completed the stop string is not output
                self._logprobs.pop()
            self._send(text)
            self.finish("stop", flush=False)
            return
        if text:
            self._send(text)
        if 0 < self.num_predict <= len(self.generated) or self.n_past >= self.n_ctx:
            self.finish("length")
        else:
            self.next_token = token

    def finish(self, reason: FinishReason, *, flush: bool = True) -> None:
        """Send the remaining text; the Done event follows when the loop frees the sequence."""
        if flush:
            self._send(self.text.flush())
        end = time.perf_counter_ns()
        first = self._t_first or end
        self.final = Done(
            reason=reason,
            prompt_tokens=len(self.prompt),
            completion_tokens=len(self.generated),
            prompt_eval_ns=first - (self._t_start or first),
            eval_ns=end - first,
            context=self.tokens(),
        )

    def fail(self, error: BaseException) -> None:
        self.final = error

    def free(self) -> None:
        """Free the sampler, then send the final event and tell the consumer the sequence is
        gone (loop thread, after its KV cells are freed)."""
        if self.chain is not None:
            free_chain(self.chain)
            self.chain = None
        if self.final is not None:
            self.channel.send(self.final)
        self.channel.release()

    def _send(self, text: str) -> None:
        if text or self._logprobs:
            self.channel.send(Delta(text=text, logprobs=self._logprobs))
            self._logprobs = []
