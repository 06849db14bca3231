"""Continuous batching: one thread owns the model and mlx-lm's BatchGenerator.

Requests join the running batch between steps (their prompts are processed in chunks of
``prefill_step`` tokens while the others keep decoding); finished or cancelled ones leave it
at once. Prompt caches of finished sequences are kept in mlx-lm's LRUPromptCache, so a request
that repeats a prefix (the next turn of a chat) starts from the cached state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vllama.batching import BatchLoop as BaseLoop
from vllama.types import PrefixCacheStats
from vllama_mlx.logprobs import token_logprob
from vllama_mlx.sequence import Sequence

#: The LRUPromptCache's key for this engine's one model.
_MODEL_KEY = "model"


class Loaded:
    """What the loader returns: the mlx-lm model and its TokenizerWrapper."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer


class BatchLoop(BaseLoop[Sequence]):
    """Loads the model on its own thread (``loader``, in :meth:`start`) and serves every
    sequence from it; ``id`` is a sequence's uid in the BatchGenerator."""

    label = "MLX"

    def __init__(
        self,
        loader: Callable[[], Loaded],
        *,
        parallel: int,
        prefill_step: int,
        cache_entries: int,
        cache_bytes: int,
    ) -> None:
        super().__init__(name="mlx-batch")
        self._loader = loader
        self._parallel = parallel
        self._prefill_step = prefill_step
        self._cache_entries = cache_entries
        self._cache_bytes = cache_bytes
        #: What the prompt cache (finished sequences kept for prefix reuse) holds and has done.
        self.prefix_cache = PrefixCacheStats(budget_bytes=cache_bytes)

    def setup(self) -> None:
        import mlx.core as mx
        from mlx_lm.generate import StopSequences
        from mlx_lm.models.cache import LRUPromptCache

        self.loaded = self._loader()
        # All generation runs on this thread's default stream.
        self._stream = mx.default_stream(mx.default_device())
        self._prompts = LRUPromptCache(max_size=self._cache_entries, max_bytes=self._cache_bytes)
        self._eos_stop = StopSequences([(t,) for t in self.loaded.tokenizer.eos_token_ids])
        self._no_stop = StopSequences()
        self._gen = self._new_generator()

    def teardown(self) -> None:
        import mlx.core as mx

        self._gen.close()
        del self._gen, self._prompts, self.loaded
        mx.clear_cache()

    def _new_generator(self) -> Any:
        from mlx_lm.generate import BatchGenerator

        return BatchGenerator(
            self.loaded.model,
            completion_batch_size=self._parallel,
            prefill_batch_size=self._parallel,
            prefill_step_size=self._prefill_step,
            stream=self._stream,
        )

    def recover(self) -> None:
        self._gen.close()
        self._gen = self._new_generator()

    def admit(self, seq: Sequence) -> None:
        from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache

        prompt = seq.prompt
        cache, rest = self._prompts.fetch_nearest_cache(_MODEL_KEY, prompt)
        if cache is not None and not rest:  # an exact hit: at least one token must run
            if can_trim_prompt_cache(cache):
                trim_prompt_cache(cache, 1)
                rest = prompt[-1:]
            else:
                cache, rest = None, prompt
        reused = len(prompt) - len(rest)
        self.prefix_cache.admitted(reused)
        (seq.id,) = self._gen.insert(
            [rest],
            max_tokens=[seq.max_tokens],
            caches=[cache],
            all_tokens=[prompt[:reused]],
            samplers=[seq.sampler],
            logits_processors=[seq.processors],
            stop_sequences=[self._stops(seq)],
        )
        seq.started()

    def _stops(self, seq: Sequence) -> Any:
        """The tokens that end ``seq``: the model's end of text and the sequence's own."""
        from mlx_lm.generate import StopSequences

        if seq.ignore_eos:
            return self._no_stop
        if not seq.end_tokens:
            return self._eos_stop
        return StopSequences([(t,) for t in sorted(self.loaded.tokenizer.eos_token_ids | seq.end_tokens)])

    def drop(self, seqs: list[Sequence]) -> None:
        self._gen.remove([s.id for s in seqs])
        super().drop(seqs)

    def step(self) -> None:
        _, responses = self._gen.next()
        tokenizer = self.loaded.tokenizer
        by_id = {s.id: s for s in self.running}
        stopped_early = []
        for r in responses:
            seq = by_id.get(r.uid)
            if seq is None:
                continue
            end = r.finish_reason == "stop"  # an end token, not output
            logprob = None
            if seq.top_logprobs is not None and not end:
                logprob = token_logprob(tokenizer, r.logprobs, r.token, seq.top_logprobs)
            seq.accept(r.token, logprob, end=end, last=r.finish_reason is not None)
            if r.finish_reason is not None:
                self._remember(r.all_tokens[:], r.prompt_cache)
            elif seq.finished:  # a stop string: still in mlx-lm's batch
                stopped_early.append(seq)
        if stopped_early:
            caches = self._gen.remove([s.id for s in stopped_early], return_prompt_caches=True)
            for seq in stopped_early:
                if seq.id in caches:
                    cache, tokens = caches[seq.id]
                    self._remember(tokens[:], cache)

    def _remember(self, tokens: list[int], cache: list[Any]) -> None:
        """Keep a finished sequence's cache for requests that repeat its prefix."""
        self._prompts.insert_cache(_MODEL_KEY, tokens, cache)
        self.prefix_cache.entries = len(self._prompts)
        self.prefix_cache.bytes = self._prompts.nbytes
