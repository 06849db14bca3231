"""Continuous batching: one thread runs llama_decode over every active sequence of a context.

Each step decodes one token for every generating sequence plus as much of the waiting prompts
as fits in ``n_batch``, then samples each sequence's next token. Sequences join and leave
between steps; a cancelled one is dropped and its KV cells freed at the next step.

Batch order matters for speed: with one KV stream per sequence, llama.cpp keeps a batch in one
micro-batch only when its seq_ids increase in batch order. So running sequences are kept sorted
by slot (the toolkit keeps them in ``id`` order, and ``id`` is the slot) and a new sequence takes
the lowest free slot, and each step reads the weights once.
"""

from __future__ import annotations

import bisect
import logging
import time
from typing import Any

import llama_cpp as lc
import numpy as np

from vllama.batching import BatchLoop as BaseLoop
from vllama.errors import EngineError
from vllama_llamacpp.logprobs import token_logprob
from vllama_llamacpp.native import Model
from vllama_llamacpp.sequence import Sequence

log = logging.getLogger("vllama.llamacpp")

#: How long a step that carries a prompt chunk may stall the sequences already generating.
PREFILL_STALL_S = 0.25
MIN_PREFILL_CHUNK = 32


class BatchLoop(BaseLoop[Sequence]):
    """Owns a generation context (may be None for embedding-only models) and the thread that
    is the only one to touch it. Other work that must not race it runs through :meth:`call`."""

    label = "llama.cpp"

    def __init__(self, model: Model, ctx: Any, *, n_batch: int, n_slots: int, reuse_prefix: bool) -> None:
        super().__init__(name="llamacpp-batch")
        self._model = model
        self._ctx = ctx
        self._n_batch = n_batch
        self._reuse_prefix = reuse_prefix
        self._batch: Any = lc.llama_batch_init(n_batch, 0, 1) if ctx else None
        self._mem = lc.llama_get_memory(ctx) if ctx else None
        self._free_slots = list(range(n_slots))
        #: Per slot: the tokens whose KV cells it still holds, for prefix reuse.
        self._cached: list[list[int]] = [[] for _ in range(n_slots)]
        self._prefill_token_s = 0.005  # a guess (200 prompt tokens/s), refined as it runs

    def teardown(self) -> None:
        if self._batch is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None

    def has_room(self) -> bool:
        return bool(self._free_slots)

    def admit(self, seq: Sequence) -> None:
        slot, common = self._pick_slot(seq.prompt)
        cached = self._cached[slot]
        if common < len(cached) and not lc.llama_memory_seq_rm(self._mem, slot, common, -1):
            lc.llama_memory_seq_rm(self._mem, slot, -1, -1)
            common = 0
        self._free_slots.remove(slot)
        self._cached[slot] = []
        seq.id = slot
        seq.n_past = common

    def on_leave(self, seq: Sequence, *, keep_cache: bool) -> None:
        if keep_cache and self._reuse_prefix:
            self._cached[seq.id] = seq.tokens()[: seq.n_past]
        else:
            lc.llama_memory_seq_rm(self._mem, seq.id, -1, -1)
            self._cached[seq.id] = []
        bisect.insort(self._free_slots, seq.id)

    def _pick_slot(self, prompt: list[int]) -> tuple[int, int]:
        """The free slot whose cached tokens share the longest prefix with ``prompt``; among
        equals the lowest, which keeps the running slots packed."""
        best, best_common = self._free_slots[0], 0
        if self._reuse_prefix:
            for slot in self._free_slots:
                common = _common_prefix(self._cached[slot], prompt)
                if common > best_common:
                    best, best_common = slot, common
        # at least one prompt token must be decoded to get logits
        return best, min(best_common, len(prompt) - 1)

    def _prefill_budget(self) -> int:
        """Prompt tokens to add to a step that also decodes: about :data:`PREFILL_STALL_S`
        worth, so that a long prompt does not stall the sequences already generating."""
        return max(MIN_PREFILL_CHUNK, int(PREFILL_STALL_S / self._prefill_token_s))

    def _measure(self, n_prefill: int, seconds: float) -> None:
        """Track the time a prompt token takes (an average over recent large chunks)."""
        if n_prefill >= MIN_PREFILL_CHUNK:
            self._prefill_token_s = 0.7 * self._prefill_token_s + 0.3 * seconds / n_prefill

    def step(self) -> None:
        b, n, outputs = self._batch, 0, []
        tokens, pos, n_seq_id, seq_ids, logits = b.token, b.pos, b.n_seq_id, b.seq_id, b.logits
        for seq in self.running:
            if seq.next_token is not None:
                tokens[n], pos[n], n_seq_id[n], logits[n] = seq.next_token, seq.n_past, 1, 1
                seq_ids[n][0] = seq.id
                seq.batch_index, seq.n_in_batch = n, 1
                outputs.append(seq)
                n += 1
        n_decoding = n
        limit = min(self._n_batch, n + self._prefill_budget()) if n else self._n_batch
        for seq in self.running:
            if n >= limit:
                break
            if not seq.prefilling:
                continue
            seq.started()
            take = min(limit - n, len(seq.prompt) - seq.n_past)
            sid = seq.id
            for j, token in enumerate(seq.prompt[seq.n_past : seq.n_past + take], seq.n_past):
                tokens[n], pos[n], n_seq_id[n], logits[n] = token, j, 1, 0
                seq_ids[n][0] = sid
                n += 1
            seq.n_in_batch = take
            if seq.n_past + take == len(seq.prompt):
                logits[n - 1] = 1
                seq.batch_index = n - 1
                outputs.append(seq)
        b.n_tokens = n
        in_batch = [s for s in self.running if s.n_in_batch]
        started = time.perf_counter()
        rc = lc.llama_decode(self._ctx, b)
        self._measure(n - n_decoding, time.perf_counter() - started)
        if rc != 0:
            log.error("llama_decode failed with %d over %d tokens", rc, n)
            for seq in in_batch:
                seq.fail(EngineError(f"llama.cpp failed to decode the batch (error {rc})"))
                self.leave(seq, keep_cache=False)
            return
        for seq in in_batch:
            seq.n_past += seq.n_in_batch
            seq.n_in_batch = 0
        for seq in outputs:
            if seq.cancelled:
                continue
            if seq.sampler is None:  # plain greedy: the argmax, without a sampler's copy of the vocab
                row = lc.llama_get_logits_ith(self._ctx, seq.batch_index)
                token = int(np.ctypeslib.as_array(row, shape=(self._model.n_vocab,)).argmax())
            else:
                token = lc.llama_sampler_sample(seq.sampler, self._ctx, seq.batch_index)
            logprob = None
            if seq.top_logprobs is not None:
                row = lc.llama_get_logits_ith(self._ctx, seq.batch_index)
                logprob = token_logprob(self._model, row, token, seq.top_logprobs)
            seq.next_token = None
            seq.accept(token, logprob)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
