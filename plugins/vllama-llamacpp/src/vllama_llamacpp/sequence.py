"""One request inside the batch loop: the toolkit's sequence, with its place in the KV cache."""

from __future__ import annotations

import codecs
from array import array
from collections.abc import Callable
from typing import Any

from vllama import batching
from vllama.types import TokenLogprob
from vllama_llamacpp.native import Model
from vllama_llamacpp.sampling import free_chain


class Sequence(batching.Sequence):
    """A generation in progress; ``sampler`` is its llama.cpp sampler chain (None: plain greedy,
    the argmax), ``id`` its slot: its KV sequence id."""

    def __init__(
        self, model: Model, prompt: list[int], *, n_ctx: int, end_tokens: frozenset[int] = frozenset(), special: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(prompt, **kwargs)
        self.model = model
        #: Render control tokens in the reply (harmony's channel markers).
        self.special = special
        self.n_ctx = n_ctx
        #: Tokens that end this reply besides llama.cpp's end-of-generation ones (a middle's).
        self.end_tokens = end_tokens
        #: The prompt packed for prefix comparison.
        self.packed = array("i", prompt)
        #: Tokens of prompt + reply whose KV cells are in the cache.
        self.n_past = 0
        #: Admission order: prompt chunks go to the oldest first.
        self.order = 0
        #: A running sequence whose first ``share_len`` cells this one copies once it has them.
        self.share_from: Sequence | None = None
        self.share_len = 0
        #: Draft tokens decoded with ``next_token`` in the current step.
        self.draft: list[int] = []
        #: Whether it drafts still, and its drafted and confirmed tokens so far.
        self.drafting = True
        self.drafted = 0
        self.draft_accepted = 0
        #: Sampled, not yet decoded.
        self.next_token: int | None = None
        self.batch_index = -1
        self.n_in_batch = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        #: Builds the chain that constrains the answer once the thinking is over (``format``
        #: with thinking: think freely, then answer in the format).
        self.after_thinking: Callable[[], Any] | None = None

    @property
    def waiting_to_share(self) -> bool:
        return self.share_from is not None

    @property
    def prefilling(self) -> bool:
        return self.n_past < len(self.prompt)

    def accept(self, token: int, logprob: TokenLogprob | None = None, *, end: bool = False, last: bool = False) -> None:
        """Take a sampled token; an end-of-generation token ends the reply unless ``ignore_eos``."""
        ends = self.model.is_eog(token) or token in self.end_tokens
        super().accept(token, logprob, end=end or (ends and not self.ignore_eos), last=last)
        if not self.finished:
            self.next_token = token
            if self.after_thinking is not None and self.thinking is not None and self.thinking.answering:
                free_chain(self.sampler)
                self.sampler, self.after_thinking = self.after_thinking(), None

    def detokenize(self, token: int) -> str:
        return self._decoder.decode(self.model.piece(token, special=self.special))

    def detokenize_rest(self) -> str:
        return self._decoder.decode(b"", final=True)

    def at_limit(self) -> bool:
        return super().at_limit() or self.n_past >= self.n_ctx

    def free(self) -> None:
        free_chain(self.sampler)
        self.sampler = None
