"""Continuous batching: one thread runs llama_decode over every active sequence of a context.

Each step decodes one token for every generating sequence plus as much of the waiting prompts
as fits in ``n_batch``, then samples each sequence's next token. Sequences join and leave
between steps; a cancelled one is dropped and its KV cells freed at the next step.

Batch order matters for speed: with one KV stream per sequence, llama.cpp keeps a batch in one
micro-batch only when its seq_ids increase in batch order. So running sequences are kept sorted
by slot (the toolkit keeps them in ``id`` order, and ``id`` is the slot) and a new sequence takes
the lowest free slot, and each step reads the weights once. Prompt chunks go to the oldest
admitted prompts first, so a prompt never waits behind later arrivals.

A prompt starts from the longest cached prefix it finds, in this order of cost: the cells a
free slot still holds from its last sequence; the cells of a running sequence, copied (a
sequence whose source is still prefilling the shared part waits for it rather than computing
it again); a state kept in host memory (:class:`~vllama.prefix_cache.PrefixCache`), saved
through llama.cpp's sequence state when a slot's cells were about to be overwritten.

With ``draft_tokens``, a greedy sequence decodes, with its next token, guesses of the tokens
after it drawn from its own prompt and reply (:func:`~vllama.drafting.prompt_lookup`), and keeps
the guesses that its greedy choice at each of them confirms: one step can then give several
tokens of a reply that copies its input. A sequence whose guesses are mostly wrong stops
drafting.
"""

from __future__ import annotations

import bisect
import ctypes
import itertools
import logging
import time
from array import array
from typing import Any

import llama_cpp as lc
import numpy as np

from vllama.batching import BatchLoop as BaseLoop
from vllama.drafting import prompt_lookup
from vllama.errors import EngineError
from vllama.prefix_cache import PrefixCache, common_prefix
from vllama_llamacpp.logprobs import token_logprob
from vllama_llamacpp.native import Model
from vllama_llamacpp.sequence import Sequence

log = logging.getLogger("vllama.llamacpp")

#: How long a step that carries a prompt chunk may stall the sequences already generating.
PREFILL_STALL_S = 0.25
MIN_PREFILL_CHUNK = 32
#: A sequence stops drafting when fewer than this share of its first :data:`DRAFT_TRIAL`
#: drafted tokens were confirmed.
DRAFT_MIN_ACCEPTANCE = 0.3
DRAFT_TRIAL = 32


class BatchLoop(BaseLoop[Sequence]):
    """Owns a generation context (may be None for embedding-only models) and the thread that
    is the only one to touch it. Other work that must not race it runs through :meth:`call`."""

    label = "llama.cpp"

    def __init__(
        self,
        model: Model,
        ctx: Any,
        *,
        n_batch: int,
        n_slots: int,
        reuse_prefix: bool,
        prefix_cache: PrefixCache[Any],
        draft_tokens: int = 0,
    ) -> None:
        super().__init__(name="llamacpp-batch")
        self._model = model
        self._ctx = ctx
        self._n_batch = n_batch
        self._reuse_prefix = reuse_prefix
        self.prefix_cache = prefix_cache
        self._batch: Any = lc.llama_batch_init(n_batch, 0, 1) if ctx else None
        self._mem = lc.llama_get_memory(ctx) if ctx else None
        self._free_slots = list(range(n_slots))
        #: Per slot: the tokens whose KV cells it still holds, for prefix reuse.
        self._cached: list[array[int]] = [array("i") for _ in range(n_slots)]
        self._prefill_token_s = 0.005  # a guess (200 prompt tokens/s), refined as it runs
        self._admissions = itertools.count()
        self._draft_tokens = draft_tokens if reuse_prefix else 0  # a rejected draft's cells must be removable
        #: Draft tokens decoded, and those confirmed, since the model loaded.
        self.drafted = 0
        self.draft_accepted = 0

    def teardown(self) -> None:
        if self._batch is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None

    def has_room(self) -> bool:
        return bool(self._free_slots)

    def admit(self, seq: Sequence) -> None:
        prompt = seq.packed
        slot, common = self._pick_slot(prompt)
        self._free_slots.remove(slot)
        seq.id, seq.order = slot, next(self._admissions)
        limit = len(prompt) - 1  # at least one prompt token must be decoded to get logits
        if self._reuse_prefix:
            source, shared = self._sharing_source(prompt, common)
            if source is not None:  # copied once the source has its cells (now, or after its prefill)
                self._spill(slot, keep=0)
                seq.share_from, seq.share_len = source, min(shared, limit)
                return
            entry, found = self.prefix_cache.longest(prompt)
            found = min(found, limit)
            if entry is not None and found >= common + self.prefix_cache.min_tokens:
                self._spill(slot, keep=0)
                if self._restore(entry.state, slot, found):
                    self._start(seq, found, restored=True)
                    return
                common = 0
        self._spill(slot, keep=common)
        self._start(seq, common)

    def on_leave(self, seq: Sequence, *, keep_cache: bool) -> None:
        if keep_cache and self._reuse_prefix and not seq.waiting_to_share:
            self._cached[seq.id] = array("i", seq.tokens()[: seq.n_past])
        else:
            lc.llama_memory_seq_rm(self._mem, seq.id, -1, -1)
            self._cached[seq.id] = array("i")
        seq.share_from = None
        bisect.insort(self._free_slots, seq.id)

    def recover(self) -> None:
        self.prefix_cache.clear()

    def _start(self, seq: Sequence, reused: int, *, restored: bool = False, copied: bool = False) -> None:
        """Begin ``seq`` with its first ``reused`` tokens' cells in its slot."""
        seq.n_past = reused
        self._cached[seq.id] = array("i")
        self.prefix_cache.admitted(reused, restored=restored, copied=copied)

    def _pick_slot(self, prompt: array[int]) -> tuple[int, int]:
        """The free slot whose cached tokens share the longest prefix with ``prompt``; among
        equals the lowest, which keeps the running slots packed."""
        best, best_common = self._free_slots[0], 0
        if self._reuse_prefix:
            for slot in self._free_slots:
                common = common_prefix(self._cached[slot], prompt)
                if common > best_common:
                    best, best_common = slot, common
        return best, min(best_common, len(prompt) - 1)

    def _sharing_source(self, prompt: array[int], common: int) -> tuple[Sequence | None, int]:
        """A running sequence whose prompt shares at least ``min_tokens`` more with ``prompt``
        than ``common``, and how much."""
        best: Sequence | None = None
        best_shared = common + self.prefix_cache.min_tokens - 1
        for other in self.running:
            if other.share_from is None and (shared := common_prefix(other.packed, prompt)) > best_shared:
                best, best_shared = other, shared
        return best, best_shared

    def _share_ready(self) -> None:
        """Copy the shared cells into each sequence whose source now has them; a sequence
        whose source left first prefills from the start."""
        for seq in self.running:
            source = seq.share_from
            if source is None:
                continue
            if source not in self.running or source.cancelled:
                seq.share_from = None
                self._start(seq, 0)
            elif source.n_past >= seq.share_len:
                seq.share_from = None
                # across KV streams llama.cpp copies the whole stream (at the next decode), the
                # cells in the same places as the source's, then the copy is cut to the prefix
                lc.llama_memory_seq_cp(self._mem, source.id, seq.id, -1, -1)
                if lc.llama_memory_seq_rm(self._mem, seq.id, seq.share_len, -1):
                    self._start(seq, seq.share_len, copied=True)
                else:
                    lc.llama_memory_seq_rm(self._mem, seq.id, -1, -1)
                    self._start(seq, 0)

    def _spill(self, slot: int, *, keep: int) -> None:
        """Cut the slot's cells to their first ``keep``, saving them to host memory first when
        the cut loses enough of them to be worth keeping."""
        cached = self._cached[slot]
        if keep >= len(cached):
            return
        if len(cached) - keep >= self.prefix_cache.min_tokens and not self.prefix_cache.covers(cached):
            size = lc.llama_state_seq_get_size(self._ctx, slot)
            if self.prefix_cache.worth_saving(len(cached), size):
                self.prefix_cache.put(cached, self._save(slot, size), size)
        if keep == 0 or not lc.llama_memory_seq_rm(self._mem, slot, keep, -1):
            lc.llama_memory_seq_rm(self._mem, slot, -1, -1)
        self._cached[slot] = cached[:keep] if keep else array("i")

    def _save(self, slot: int, size: int) -> Any:
        """The slot's cells (``size`` bytes), copied to host memory as llama.cpp's sequence state."""
        buffer = (ctypes.c_uint8 * size)()
        lc.llama_state_seq_get_data(self._ctx, buffer, size, slot)
        return buffer

    def _restore(self, state: Any, slot: int, keep: int) -> bool:
        """Load a saved state into ``slot`` and cut it to its first ``keep`` cells; False (the
        slot empty) when llama.cpp refuses it."""
        if not lc.llama_state_seq_set_data(self._ctx, state, len(state), slot):
            lc.llama_memory_seq_rm(self._mem, slot, -1, -1)
            return False
        if not lc.llama_memory_seq_rm(self._mem, slot, keep, -1):
            lc.llama_memory_seq_rm(self._mem, slot, -1, -1)
            return False
        return True

    def _prefill_budget(self) -> int:
        """Prompt tokens to add to a step that also decodes: about :data:`PREFILL_STALL_S`
        worth, so that a long prompt does not stall the sequences already generating."""
        return max(MIN_PREFILL_CHUNK, int(PREFILL_STALL_S / self._prefill_token_s))

    def _measure(self, n_prefill: int, seconds: float) -> None:
        """Track the time a prompt token takes (an average over recent large chunks)."""
        if n_prefill >= MIN_PREFILL_CHUNK:
            self._prefill_token_s = 0.7 * self._prefill_token_s + 0.3 * seconds / n_prefill

    def step(self) -> None:
        self._share_ready()
        b, n, outputs = self._batch, 0, []
        tokens, pos, n_seq_id, seq_ids, logits = b.token, b.pos, b.n_seq_id, b.seq_id, b.logits
        decoding = [s for s in self.running if s.next_token is not None]
        room = self._n_batch - len(decoding)
        for seq in decoding:
            tokens[n], pos[n], n_seq_id[n], logits[n] = seq.next_token, seq.n_past, 1, 1
            seq_ids[n][0] = seq.id
            seq.batch_index, seq.n_in_batch = n, 1
            outputs.append(seq)
            n += 1
            seq.draft = self._draft(seq, room)
            room -= len(seq.draft)
            for j, token in enumerate(seq.draft, seq.n_past + 1):
                tokens[n], pos[n], n_seq_id[n], logits[n] = token, j, 1, 1
                seq_ids[n][0] = seq.id
                n += 1
            seq.n_in_batch += len(seq.draft)
        n_decoding = n
        budget = (min(self._n_batch, n + self._prefill_budget()) if n else self._n_batch) - n
        takes = prefill_plan(self.running, budget)
        for seq in self.running:  # in slot order: one micro-batch
            take = takes.get(seq.id, 0)
            if not take:
                continue
            seq.started()
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
        if n == 0:  # every sequence waits for a source to prefill (it left: the next step sees it)
            return
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
            if seq.draft:
                self._verify(seq)
                continue
            if seq.sampler is None:  # plain greedy: the argmax, without a sampler's copy of the vocab
                token = self._argmax(seq.batch_index)
            else:
                token = lc.llama_sampler_sample(seq.sampler, self._ctx, seq.batch_index)
            logprob = None
            if seq.top_logprobs is not None:
                row = lc.llama_get_logits_ith(self._ctx, seq.batch_index)
                logprob = token_logprob(self._model, row, token, seq.top_logprobs)
            seq.next_token = None
            seq.accept(token, logprob)

    def _argmax(self, index: int) -> int:
        row = lc.llama_get_logits_ith(self._ctx, index)
        return int(np.ctypeslib.as_array(row, shape=(self._model.n_vocab,)).argmax())

    def _draft(self, seq: Sequence, room: int) -> list[int]:
        """Guesses of the tokens after ``seq``'s next one, for a greedy sequence that drafts:
        no more than the batch, the context and the reply's length leave room for."""
        if not (self._draft_tokens and seq.drafting and seq.sampler is None and seq.after_thinking is None):
            return []
        if seq.top_logprobs is not None:
            return []
        limit = min(self._draft_tokens, room, seq.n_ctx - seq.n_past - 2)
        if seq.max_tokens > 0:
            limit = min(limit, seq.max_tokens - len(seq.generated))
        if limit <= 0:
            return []
        return prompt_lookup(seq.packed + array("i", seq.generated), limit)  # generated ends with the next token

    def _verify(self, seq: Sequence) -> None:
        """Keep the draft tokens that the greedy choice after each confirms, then the choice
        after the last one kept (the next token); the rejected ones' cells are removed."""
        draft, seq.draft = seq.draft, []
        end = seq.n_past  # the cells written: the next token and every draft token
        seq.n_past -= len(draft)
        kept = 0
        token = self._argmax(seq.batch_index)
        while True:
            seq.next_token = None
            seq.accept(token)
            if seq.finished or seq.sampler is not None or kept == len(draft) or token != draft[kept]:
                break
            seq.n_past += 1  # the confirmed draft token's cell stays
            kept += 1
            token = self._argmax(seq.batch_index + kept)
        if seq.n_past < end:
            lc.llama_memory_seq_rm(self._mem, seq.id, seq.n_past, -1)
        self.drafted += len(draft)
        self.draft_accepted += kept
        seq.drafted += len(draft)
        seq.draft_accepted += kept
        if seq.drafted >= DRAFT_TRIAL and seq.draft_accepted < DRAFT_MIN_ACCEPTANCE * seq.drafted:
            seq.drafting = False


def prefill_plan(running: list[Sequence], budget: int) -> dict[int, int]:
    """Prompt tokens each prefilling sequence gets in a step of ``budget`` prompt tokens, by
    slot: the oldest admitted first, so that no prompt waits behind a later one (a new prompt
    takes the lowest free slot, which may come before an older prompt's)."""
    takes: dict[int, int] = {}
    for seq in sorted((s for s in running if s.prefilling and not s.waiting_to_share), key=_admission_order):
        if budget <= 0:
            break
        takes[seq.id] = take = min(budget, len(seq.prompt) - seq.n_past)
        budget -= take
    return takes


def _admission_order(seq: Sequence) -> int:
    return seq.order
