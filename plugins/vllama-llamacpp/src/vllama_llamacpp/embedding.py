"""Pooled embeddings, and a reranker's relevance scores, from a context of their own, created on
first use. Many inputs decode together, as one batch of sequences.

Runs only on the engine's loop thread, so it never races a llama_decode on the generation
context.
"""

from __future__ import annotations

from typing import Any

import llama_cpp as lc

from vllama.errors import ContextOverflow, EngineError
from vllama.types import Embeddings, RerankScores
from vllama_llamacpp.native import Model, new_context

#: The most inputs one decode pools at once.
MAX_SEQUENCES = 64


class Embedder:
    """Embeds texts with the model's pooling (mean when it declares none), or, for a reranker,
    scores query and document pairs with llama.cpp's rank pooling."""

    def __init__(self, model: Model, *, n_ctx: int, n_threads: int, pooling_declared: bool, reranker: bool = False) -> None:
        self._model = model
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._n_seq = max(1, min(MAX_SEQUENCES, n_ctx))
        if reranker:
            self._pooling = lc.LLAMA_POOLING_TYPE_RANK
        else:
            self._pooling = lc.LLAMA_POOLING_TYPE_UNSPECIFIED if pooling_declared else lc.LLAMA_POOLING_TYPE_MEAN
        self._ctx: Any = None
        self._batch: Any = None

    @property
    def opened(self) -> bool:
        """Whether the embedding context (and its KV cache) exists yet."""
        return self._ctx is not None

    def embed(self, inputs: list[str], truncate: bool) -> Embeddings:
        prompts = [self._fit(self._model.tokenize(text), truncate) for text in inputs]
        return Embeddings(vectors=self._pooled(prompts), prompt_tokens=sum(map(len, prompts)))

    def rank(self, query: str, documents: list[str], truncate: bool) -> RerankScores:
        """One relevance score per document: the rank pooling of the pair as llama-server
        writes it (the model's "rerank" template, else query and document between its
        separators)."""
        prompts = [self._fit(self._pair(query, document), truncate) for document in documents]
        return RerankScores(scores=[out[0] for out in self._pooled(prompts)], prompt_tokens=sum(map(len, prompts)))

    def _pair(self, query: str, document: str) -> list[int]:
        model = self._model
        template = lc.llama_model_chat_template(model.ptr, b"rerank")
        if template:
            prompt = template.decode().replace("{query}", query).replace("{document}", document)
            return model.tokenize(prompt, add_special=False)
        vocab = model.vocab
        end = model.eos if model.eos != lc.LLAMA_TOKEN_NULL else lc.llama_vocab_sep(vocab)
        tokens = [model.bos] if lc.llama_vocab_get_add_bos(vocab) else []
        tokens += model.tokenize(query, add_special=False, special=False)
        tokens += [end] if lc.llama_vocab_get_add_eos(vocab) else []
        tokens += [lc.llama_vocab_sep(vocab)] if lc.llama_vocab_get_add_sep(vocab) else []
        tokens += model.tokenize(document, add_special=False, special=False)
        tokens += [end] if lc.llama_vocab_get_add_eos(vocab) else []
        return tokens

    def _fit(self, tokens: list[int], truncate: bool) -> list[int]:
        if len(tokens) <= self._n_ctx:
            return tokens
        if not truncate:
            raise ContextOverflow("the input length exceeds the context length")
        return tokens[: self._n_ctx]

    def _pooled(self, prompts: list[list[int]]) -> list[list[float]]:
        """The pooled output of each prompt, as many prompts to a decode as the context holds."""
        if self._ctx is None:
            self._open()
        out: list[list[float]] = [[0.0] * self._width() for _ in prompts]
        group: list[int] = []
        used = 0
        for i, tokens in enumerate(prompts):
            if not tokens:
                continue
            if group and (used + len(tokens) > self._n_ctx or len(group) == self._n_seq):
                self._decode(prompts, group, out)
                group, used = [], 0
            group.append(i)
            used += len(tokens)
        if group:
            self._decode(prompts, group, out)
        return out

    def _width(self) -> int:
        if self._pooling == lc.LLAMA_POOLING_TYPE_RANK:
            return max(1, lc.llama_model_n_cls_out(self._model.ptr))
        return lc.llama_model_n_embd_out(self._model.ptr) or self._model.n_embd

    def _open(self) -> None:
        self._ctx = new_context(
            self._model,
            n_ctx=self._n_ctx,
            n_batch=self._n_ctx,
            n_ubatch=self._n_ctx,
            n_seq_max=self._n_seq,
            kv_unified=True,
            n_threads=self._n_threads,
            n_threads_batch=self._n_threads,
            embeddings=True,
            pooling_type=self._pooling,
        )
        self._batch = lc.llama_batch_init(self._n_ctx, 0, 1)

    def _decode(self, prompts: list[list[int]], group: list[int], out: list[list[float]]) -> None:
        lc.llama_memory_clear(lc.llama_get_memory(self._ctx), True)
        batch, n = self._batch, 0
        for seq, i in enumerate(group):
            for pos, token in enumerate(prompts[i]):
                batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = token, pos, 1, 1
                batch.seq_id[n][0] = seq
                n += 1
        batch.n_tokens = n
        run = lc.llama_decode if self._model.has_decoder else lc.llama_encode
        rc = run(self._ctx, batch)
        if rc != 0:
            raise EngineError(f"llama.cpp failed to embed the input (error {rc})")
        width = self._width()
        for seq, i in enumerate(group):
            ptr = lc.llama_get_embeddings_seq(self._ctx, seq)
            if not ptr:
                raise EngineError("llama.cpp returned no pooled embedding")
            out[i] = ptr[:width]

    def close(self) -> None:
        if self._batch is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            lc.llama_free(self._ctx)
            self._ctx = None
