"""Continuous batching: one thread owns the model and mlx-lm's BatchGenerator.

Requests join the running batch between steps (their prompts are processed in chunks of
``prefill_step`` tokens while the others keep decoding); finished or cancelled ones leave it
at once. Prompt caches of finished sequences are kept in mlx-lm's LRUPromptCache, so a request
that repeats a prefix (the next turn of a chat) starts from the cached state.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from vllama.errors import EngineError
from vllama_mlx.logprobs import token_logprob
from vllama_mlx.sequence import Sequence

log = logging.getLogger("vllama.mlx")

#: The LRUPromptCache's key for this engine's one model.
_MODEL_KEY = "model"


class Loaded:
    """What the loader returns: the mlx-lm model and its TokenizerWrapper."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer


class BatchLoop:
    """Loads the model on its own thread (``loader``) and serves every sequence from it."""

    def __init__(
        self,
        loader: Callable[[], Loaded],
        *,
        parallel: int,
        prefill_step: int,
        cache_entries: int,
        cache_bytes: int,
    ) -> None:
        self._parallel = parallel
        self._prefill_step = prefill_step
        self._cache_entries = cache_entries
        self._cache_bytes = cache_bytes
        self._cond = threading.Condition()
        self._incoming: deque[Sequence] = deque()
        self._stopping = False
        self._active: dict[int, Sequence] = {}
        self._ready: Future[Loaded] = Future()
        #: Bytes and entries of the prompt cache (finished sequences kept for prefix reuse).
        self.cache_nbytes = 0
        self.cached_prompts = 0
        self._thread = threading.Thread(target=self._run, args=(loader,), name="mlx-batch", daemon=True)
        self._thread.start()

    def wait_loaded(self) -> Loaded:
        """Block until the model is loaded; re-raise the loader's error."""
        return self._ready.result()

    @property
    def active(self) -> int:
        return len(self._active)

    def submit(self, seq: Sequence) -> None:
        with self._cond:
            if self._stopping:
                raise EngineError("the model is being unloaded")
            self._incoming.append(seq)
            self._cond.notify()

    def cancel(self, seq: Sequence) -> None:
        """Drop ``seq`` before the next step (its consumer went away)."""
        with self._cond:
            seq.cancelled = True
            self._cond.notify()

    def stop(self) -> None:
        """Fail what is left and end the thread (blocking); the model is freed with it."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()

    # -- the loop thread -----------------------------------------------------------------

    def _run(self, loader: Callable[[], Loaded]) -> None:
        import mlx.core as mx
        from mlx_lm.generate import StopSequences
        from mlx_lm.models.cache import LRUPromptCache

        try:
            loaded = loader()
        except BaseException as e:  # noqa: BLE001  # handed to the thread that waits for the load
            self._ready.set_exception(e)
            return
        self._ready.set_result(loaded)
        self._loaded = loaded
        # All generation runs on this thread's default stream.
        self._stream = mx.default_stream(mx.default_device())
        self._prompts = LRUPromptCache(max_size=self._cache_entries, max_bytes=self._cache_bytes)
        self._eos_stop = StopSequences([(t,) for t in loaded.tokenizer.eos_token_ids])
        self._no_stop = StopSequences()
        self._gen = self._new_generator()
        try:
            self._serve()
        finally:
            self._shutdown()
            self._gen.close()
            del self._gen, self._prompts, self._loaded, loaded
            mx.clear_cache()

    def _new_generator(self) -> Any:
        from mlx_lm.generate import BatchGenerator

        return BatchGenerator(
            self._loaded.model,
            completion_batch_size=self._parallel,
            prefill_batch_size=self._parallel,
            prefill_step_size=self._prefill_step,
            stream=self._stream,
        )

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not (self._stopping or self._incoming or self._active):
                    self._cond.wait()
                if self._stopping:
                    return
                incoming = list(self._incoming)
                self._incoming.clear()
            for seq in incoming:
                try:
                    self._admit(seq)
                except Exception as e:  # this request fails, the others go on
                    log.exception("could not start a sequence")
                    seq.fail(EngineError(f"MLX engine error: {e}"))
                    seq.release()
            try:
                self._drop_cancelled()
                if self._active:
                    self._step()
            except Exception as e:  # never let one bad step kill the thread that serves everyone
                log.exception("batch step failed")
                for seq in list(self._active.values()):
                    seq.fail(EngineError(f"MLX engine error: {e}"))
                    self._leave(seq)
                self._gen.close()
                self._gen = self._new_generator()

    def _admit(self, seq: Sequence) -> None:
        from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache

        if seq.cancelled:
            seq.release()
            return
        prompt = seq.prompt
        cache, rest = self._prompts.fetch_nearest_cache(_MODEL_KEY, prompt)
        if cache is not None and not rest:  # an exact hit: at least one token must run
            if can_trim_prompt_cache(cache):
                trim_prompt_cache(cache, 1)
                rest = prompt[-1:]
            else:
                cache, rest = None, prompt
        reused = len(prompt) - len(rest)
        (seq.uid,) = self._gen.insert(
            [rest],
            max_tokens=[seq.max_tokens],
            caches=[cache],
            all_tokens=[prompt[:reused]],
            samplers=[seq.sampler],
            logits_processors=[seq.processors],
            stop_sequences=[self._no_stop if seq.ignore_eos else self._eos_stop],
        )
        seq.started()
        self._active[seq.uid] = seq

    def _drop_cancelled(self) -> None:
        cancelled = [s for s in self._active.values() if s.cancelled]
        if cancelled:
            self._gen.remove([s.uid for s in cancelled])
            for seq in cancelled:
                self._leave(seq)

    def _step(self) -> None:
        _, responses = self._gen.next()
        tokenizer = self._loaded.tokenizer
        stopped_early = []
        for r in responses:
            seq = self._active.get(r.uid)
            if seq is None:
                continue
            logprob = None
            if seq.top_logprobs is not None and r.finish_reason != "stop":
                logprob = token_logprob(tokenizer, r.logprobs, r.token, seq.top_logprobs)
            seq.accept(r.token, r.finish_reason, logprob)
            if r.finish_reason is not None:
                self._remember(r.all_tokens[:], r.prompt_cache)
                self._leave(seq)
            elif seq.finished:  # a stop string: still in mlx-lm's batch
                stopped_early.append(seq)
        if stopped_early:
            caches = self._gen.remove([s.uid for s in stopped_early], return_prompt_caches=True)
            for seq in stopped_early:
                if seq.uid in caches:
                    cache, tokens = caches[seq.uid]
                    self._remember(tokens[:], cache)
                self._leave(seq)

    def _remember(self, tokens: list[int], cache: list[Any]) -> None:
        """Keep a finished sequence's cache for requests that repeat its prefix."""
        self._prompts.insert_cache(_MODEL_KEY, tokens, cache)
        self.cached_prompts = len(self._prompts)
        self.cache_nbytes = self._prompts.nbytes

    def _leave(self, seq: Sequence) -> None:
        self._active.pop(seq.uid, None)
        seq.release()

    def _shutdown(self) -> None:
        with self._cond:
            pending = list(self._incoming) + list(self._active.values())
            self._incoming.clear()
            self._active.clear()
        for seq in pending:
            if not seq.finished:
                seq.fail(EngineError("the model was unloaded"))
            seq.release()
