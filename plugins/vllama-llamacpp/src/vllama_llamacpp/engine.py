"""The llama.cpp engine: a GGUF model, a context shared by ``parallel`` sequences, and the
batch loop that serves them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import llama_cpp as lc

from vllama import fim, gguf
from vllama.batching import BatchEngine, top_logprobs
from vllama.chat_inputs import generate_messages, is_jinja
from vllama.errors import BadRequest, EngineError, Unsupported
from vllama.prefix_cache import PrefixCache
from vllama.thinking import Harmony, thinking_format
from vllama.tool_calls import FORMATS
from vllama.types import (
    ChatRequest,
    Embeddings,
    EmbedRequest,
    EngineInfo,
    GenerateRequest,
    LoadSettings,
    ModelRef,
    RerankRequest,
    RerankScores,
)
from vllama_llamacpp.backend import LlamaCppSettings
from vllama_llamacpp.batch_loop import BatchLoop
from vllama_llamacpp.chat_template import ChatTemplate
from vllama_llamacpp.embedding import Embedder
from vllama_llamacpp.native import Model, new_context
from vllama_llamacpp.sampling import build_chain, grammar_for
from vllama_llamacpp.sequence import Sequence
from vllama_llamacpp.tool_grammar import ToolGrammar, tool_grammar

#: Bytes per KV cache element (llama.cpp's default f16 cache).
_KV_ELEMENT_BYTES = 2


class LlamaCppEngine(BatchEngine[Sequence]):
    """A loaded GGUF model. The constructor blocks while it loads; run it in a thread.

    Each of ``settings.parallel`` sequences gets ``settings.num_ctx`` tokens of context.
    """

    loop: BatchLoop

    def __init__(self, ref: ModelRef, settings: LoadSettings, *, n_threads: int, n_gpu_layers: int = 0) -> None:
        super().__init__(ref, settings)
        header = _read_header(ref)
        metadata = header.metadata
        arch = header.architecture
        self._model = Model(ref.path, ref.name, n_gpu_layers=n_gpu_layers)
        self._offloaded = n_gpu_layers != 0 and bool(lc.llama_supports_gpu_offload())
        pooling_declared = metadata.get(f"{arch}.pooling_type") is not None
        self._generative = self._model.has_decoder and not pooling_declared
        n_batch = max(settings.num_batch, self.parallel)  # one decode token per sequence fits
        ctx = None
        try:
            self._template = self._chat_template(ref, str(metadata.get("tokenizer.chat_template") or ""))
            self.thinking_format = thinking_format(self._template.source) if self._template else None
            if self._generative:
                ctx = new_context(
                    self._model,
                    n_ctx=self.n_ctx * self.parallel,
                    n_batch=n_batch,
                    n_ubatch=n_batch,
                    n_seq_max=self.parallel,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    kv_unified=False,
                )
            self._ctx = ctx
            engine_settings = LlamaCppSettings.of(settings.engine)
            self.loop = BatchLoop(
                self._model,
                ctx,
                n_batch=n_batch,
                n_slots=self.parallel,
                reuse_prefix=self._model.can_trim_cache,
                prefix_cache=PrefixCache(engine_settings.prefix_cache_mb << 20),
                draft_tokens=engine_settings.draft_tokens,
            )
            self.loop.start()
        except BaseException:
            if ctx is not None:
                lc.llama_free(ctx)
            self._model.close()
            raise
        self._reranker = "rerank" in ref.capabilities
        self._embedder = Embedder(
            self._model, n_ctx=self.n_ctx, n_threads=n_threads, pooling_declared=pooling_declared, reranker=self._reranker
        )
        self._fim = _fim_tokens(self._model, header)
        self._kv_cell_bytes = _kv_cell_bytes(self._model, header)

    # -- generation ------------------------------------------------------------------------

    def generate_prompt(self, request: GenerateRequest) -> list[int]:
        self._check_generative()
        for token in request.context:
            if not 0 <= token < self._model.n_vocab:
                raise BadRequest(f"invalid context: token id {token} is out of range")
        if request.images:
            raise Unsupported(f'"{self.name}" does not support images')
        if fim.wanted(request):
            if self._fim is None:
                raise Unsupported(f'"{self.name}" does not support insert')
            bos = [self._model.bos] if lc.llama_vocab_get_add_bos(self._model.vocab) else []
            return fim.prompt(self._fim, request, lambda text: self._model.tokenize(text, add_special=False), bos=bos)
        if request.raw or self._template is None:
            if not request.prompt:
                return list(request.context)
            return list(request.context) + self._model.tokenize(request.prompt, add_special=not request.context)
        messages = generate_messages(request)
        return list(request.context) + self._model.tokenize(self._template.render(messages, think=request.think))

    def chat_prompt(self, request: ChatRequest) -> list[int]:
        self._check_generative()
        if self._template is None:
            raise Unsupported(f'"{self.name}" does not support chat')
        if any(m.images for m in request.messages):
            raise Unsupported(f'"{self.name}" does not support images')
        return self._model.tokenize(self._template.render(request.messages, request.tools, request.think))

    def prompt_text(self, tokens: list[int]) -> str:
        return "".join(self._model.special_text(t) for t in tokens)

    def _check_generative(self) -> None:
        if not self._generative:
            raise Unsupported(f'"{self.name}" does not support generate')

    def sequence(self, prompt: list[int], request: GenerateRequest | ChatRequest) -> Sequence:
        options = request.options
        tools = _tool_grammar(request)
        # format with thinking: think freely, then answer in the format
        defer = request.format is not None and tools is None and self.thinks(request)
        if defer:
            grammar_for(request.format)  # a bad schema is a 400 now, not an error mid-reply
        seq = Sequence(
            self._model,
            prompt,
            n_ctx=self.n_ctx,
            special=isinstance(self.thinking_format, Harmony) and self.thinks(request),
            sampler=build_chain(self._model, options, None if defer else request.format, tools),
            max_tokens=options.num_predict,
            ignore_eos=options.ignore_eos,
            stop=options.stop,
            top_logprobs=top_logprobs(request),
            end_tokens=fim.ends(self._fim, request),
        )
        if defer:
            # no leading whitespace: a model held to the format would write newlines for ever
            seq.after_thinking = lambda: build_chain(self._model, options, request.format)
        return seq

    # -- embeddings, info, close -----------------------------------------------------------

    async def embed(self, request: EmbedRequest) -> Embeddings:
        future = self.loop.call(lambda: self._embedder.embed(request.inputs, request.truncate))
        return await asyncio.wrap_future(future)

    async def rerank(self, request: RerankRequest) -> RerankScores:
        if not self._reranker:
            raise Unsupported(f'"{self.name}" is not a reranker')
        future = self.loop.call(lambda: self._embedder.rank(request.query, request.documents, request.truncate))
        return await asyncio.wrap_future(future)

    def info(self) -> EngineInfo:
        cells = (self.n_ctx * self.parallel if self._ctx else 0) + (self.n_ctx if self._embedder.opened else 0)
        kv_bytes = cells * self._kv_cell_bytes
        cache = self.loop.prefix_cache.stats() if self._ctx else None
        size = self._model.size + kv_bytes
        return self.engine_info(
            size,
            on_device=self._offloaded,
            info={
                "llama.cpp.kv_cache_bytes": kv_bytes,
                "llama.cpp.model_bytes": self._model.size,
                "llama.cpp.n_threads": lc.llama_n_threads(self._ctx) if self._ctx else 0,
                "llama.cpp.draft_tokens": self.loop.drafted,
                "llama.cpp.draft_tokens_accepted": self.loop.draft_accepted,
            },
            prefix_cache=cache,
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._free)

    def _free(self) -> None:
        self.loop.stop()
        self._embedder.close()
        if self._ctx is not None:
            lc.llama_free(self._ctx)
            self._ctx = None
        self._model.close()

    def _chat_template(self, ref: ModelRef, embedded: str) -> ChatTemplate | None:
        """The Modelfile's template when it is Jinja, else the GGUF's own; None if neither."""
        source = ref.template if is_jinja(ref.template) else embedded
        if not source.strip():
            return None
        return ChatTemplate(
            source,
            bos_token=self._model.special_text(self._model.bos),
            eos_token=self._model.special_text(self._model.eos),
        )


def _tool_grammar(request: GenerateRequest | ChatRequest) -> ToolGrammar | None:
    """The grammar for the request's tool calls: from the first token when a call is
    required, else switched on when the model opens one."""
    if not isinstance(request, ChatRequest) or not request.tools:
        return None
    fmt = request.tool_format if request.tool_format in FORMATS else "json"
    required = request.tool_choice == "required"
    if not required and request.format is not None:
        return None  # the reply's format wins over lazily constrained calls
    return tool_grammar(request.tools, fmt, parallel=request.parallel_tool_calls, lazy=not required)


def _fim_tokens(model: Model, header: gguf.GGUFFile) -> fim.FimTokens | None:
    """llama.cpp's own FIM tokens (named by the metadata, or found by their text), ending also
    at the end tokens of the family the vocabulary shows; else that family's, for families
    llama.cpp does not look for (Codestral's)."""
    found = fim.find(header.tokens)
    ids = lc.llama_vocab_fim_pre(model.vocab), lc.llama_vocab_fim_suf(model.vocab), lc.llama_vocab_fim_mid(model.vocab)
    if min(ids) < 0:
        return found
    return fim.FimTokens(*ids).with_ends(found)


def _read_header(ref: ModelRef) -> gguf.GGUFFile:
    """The GGUF header (with the vocabulary's FIM tokens), or an EngineError saying why the
    file cannot be a model."""
    path = Path(ref.path)
    try:
        return gguf.read(path, find_tokens=fim.TOKEN_TEXTS)
    except gguf.InvalidGGUF as e:
        raise EngineError(f"failed to load model {ref.name}: {e.message}") from None
    except OSError as e:
        raise EngineError(f"failed to load model {ref.name}: {e.strerror or e}") from None


def _kv_cell_bytes(model: Model, header: gguf.GGUFFile) -> int:
    """The KV cache's size per token: K and V for every layer, in f16."""
    ptr = model.ptr
    head_dim = model.n_embd // max(1, lc.llama_model_n_head(ptr))
    k_dim = int(header.arch_key("attention.key_length") or head_dim)
    v_dim = int(header.arch_key("attention.value_length") or head_dim)
    return lc.llama_model_n_layer(ptr) * lc.llama_model_n_head_kv(ptr) * (k_dim + v_dim) * _KV_ELEMENT_BYTES
