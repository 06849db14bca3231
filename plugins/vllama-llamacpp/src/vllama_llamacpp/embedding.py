"""Pooled embeddings from a context of their own, created on first use.

Runs only on the engine's loop thread, so it never races a llama_decode on the generation
context.
"""

from __future__ import annotations

from typing import Any

import llama_cpp as lc

from vllama.errors import ContextOverflow, EngineError
from vllama.types import Embeddings
from vllama_llamacpp.native import Model, new_context


class Embedder:
    """Embeds texts one at a time with the model's pooling (mean when it declares none)."""

    def __init__(self, model: Model, *, n_ctx: int, n_threads: int, pooling_declared: bool) -> None:
        self._model = model
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._pooling = lc.LLAMA_POOLING_TYPE_UNSPECIFIED if pooling_declared else lc.LLAMA_POOLING_TYPE_MEAN
        self._ctx: Any = None
        self._batch: Any = None

    @property
    def opened(self) -> bool:
        """Whether the embedding context (and its KV cache) exists yet."""
        return self._ctx is not None

    def embed(self, inputs: list[str], truncate: bool) -> Embeddings:
        if self._ctx is None:
            self._open()
        vectors, n_tokens = [], 0
        for text in inputs:
            tokens = self._model.tokenize(text)
            if len(tokens) > self._n_ctx:
                if not truncate:
                    raise ContextOverflow("the input length exceeds the context length")
                tokens = tokens[: self._n_ctx]
            vectors.append(self._vector(tokens))
            n_tokens += len(tokens)
        return Embeddings(vectors=vectors, prompt_tokens=n_tokens)

    def _open(self) -> None:
        self._ctx = new_context(
            self._model,
            n_ctx=self._n_ctx,
            n_batch=self._n_ctx,
            n_ubatch=self._n_ctx,
            n_seq_max=1,
            n_threads=self._n_threads,
            n_threads_batch=self._n_threads,
            embeddings=True,
            pooling_type=self._pooling,
        )
        self._batch = lc.llama_batch_init(self._n_ctx, 0, 1)

    def _vector(self, tokens: list[int]) -> list[float]:
        if not tokens:
            return [0.0] * self._model.n_embd
        lc.llama_memory_clear(lc.llama_get_memory(self._ctx), True)
        batch = self._batch
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, i, 1, 1
            batch.seq_id[i][0] = 0
        batch.n_tokens = len(tokens)
        run = lc.llama_decode if self._model.has_decoder else lc.llama_encode
        rc = run(self._ctx, batch)
        if rc != 0:
            raise EngineError(f"llama.cpp failed to embed the input (error {rc})")
        ptr = lc.llama_get_embeddings_seq(self._ctx, 0)
        if not ptr:
            raise EngineError("llama.cpp returned no pooled embedding")
        return ptr[: lc.llama_model_n_embd_out(self._model.ptr) or self._model.n_embd]

    def close(self) -> None:
        if self._batch is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            lc.llama_free(self._ctx)
            self._ctx = None
