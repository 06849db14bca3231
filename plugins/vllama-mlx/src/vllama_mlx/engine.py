"""The MLX engine: a model loaded by mlx-lm and the batch loop that serves it."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec

from vllama.batching import BatchEngine, top_logprobs
from vllama.errors import Unsupported
from vllama.tool_calls import parse_tool_calls
from vllama.types import (
    ChatRequest,
    Embeddings,
    EmbedRequest,
    EngineInfo,
    EventStream,
    GenerateRequest,
    LoadSettings,
    ModelRef,
)
from vllama_mlx import sampling
from vllama_mlx.batch_loop import BatchLoop
from vllama_mlx.loading import load_model
from vllama_mlx.output_format import FormatCompiler
from vllama_mlx.prompts import Prompts
from vllama_mlx.sequence import Sequence
from vllama_mlx.tool_parsing import module_name, parser_for

#: Finished sequences whose caches are kept for prefix reuse, and the bytes they may hold.
PROMPT_CACHE_ENTRIES = 16
PROMPT_CACHE_BYTES = 1 << 30


class MlxEngine(BatchEngine[Sequence]):
    """A loaded model. The constructor blocks while it loads; run it in a thread.

    Each of ``settings.parallel`` sequences gets ``settings.num_ctx`` tokens of context.
    """

    loop: BatchLoop

    def __init__(self, ref: ModelRef, settings: LoadSettings, *, unified_memory: bool = False) -> None:
        super().__init__(ref, settings)
        self._unified = unified_memory
        self.loop = BatchLoop(
            lambda: load_model(ref, str(settings.engine.get("dtype", "auto"))),
            parallel=self.parallel,
            prefill_step=settings.num_batch,
            cache_entries=PROMPT_CACHE_ENTRIES,
            cache_bytes=PROMPT_CACHE_BYTES,
        )
        self.loop.start()
        loaded = self.loop.loaded
        self._tokenizer = loaded.tokenizer
        self._vocab_size = int(getattr(getattr(loaded.model, "args", None), "vocab_size", 0) or len(loaded.tokenizer))
        self._prompts = Prompts(loaded.tokenizer, ref)
        self._formats = FormatCompiler(loaded.tokenizer, self._vocab_size)
        self.thinking_format = self._prompts.thinking_format
        self._weights_bytes, self._dtype, itemsize = _weights(loaded.model)
        self._kv_token_bytes = _kv_token_bytes(loaded.model, itemsize)

    # -- generation ------------------------------------------------------------------------

    def generate_prompt(self, request: GenerateRequest) -> list[int]:
        return self._prompts.for_generate(request)

    def chat_prompt(self, request: ChatRequest) -> list[int]:
        return self._prompts.for_chat(request)

    def generate(self, request: GenerateRequest) -> EventStream:
        events = super().generate(request)
        return events if request.format is None else self._formats_ready(events)

    def prompt_text(self, tokens: list[int]) -> str:
        return self._prompts.text(tokens)

    def chat(self, request: ChatRequest) -> EventStream:
        events = super().chat(request)
        if request.format is not None:
            events = self._formats_ready(events)
        if not request.tools:
            return events
        return parse_tool_calls(events, parser_for(module_name(self.ref, self._tokenizer, request.tool_format), request))

    async def _formats_ready(self, events: EventStream) -> EventStream:
        """``events`` once llguidance's vocabulary is built (the first request with a format
        waits for it here, off the event loop, rather than in :meth:`sequence`)."""
        with contextlib.suppress(Exception):  # a vocabulary llguidance cannot read: sequence() says so (a 400)
            await asyncio.wrap_future(self._formats.vocabulary())
        async with contextlib.aclosing(events) as inner:
            async for event in inner:
                yield event

    def sequence(self, prompt: list[int], request: GenerateRequest | ChatRequest) -> Sequence:
        options = request.options
        plan = sampling.plan(options, vocab_size=self._vocab_size, n_ctx=self.n_ctx) if options.num_predict else None
        sampler, processors = sampling.build(plan) if plan is not None else (None, [])
        room = max(1, self.n_ctx - len(prompt))
        constrained = request.format is not None and plan is not None
        seq = Sequence(
            prompt,
            sampler=sampler,
            processors=processors,
            format_mask=self._formats.mask(request.format) if constrained else None,
            detokenizer=self._tokenizer.detokenizer,
            max_tokens=min(options.num_predict, room) if options.num_predict > 0 else room,
            ignore_eos=options.ignore_eos and not constrained,  # a formatted reply ends with its value
            stop=options.stop,
            top_logprobs=top_logprobs(request),
            end_tokens=self._prompts.end_tokens(request),
        )
        if seq.format_mask is not None and self.thinks(request):  # think freely, then answer in the format
            seq.format_mask.wait_while(lambda: seq.thinking is not None and not seq.thinking.answering)
        if options.num_predict == 0:  # the prompt only: nothing to run
            seq.finish("length")
        return seq

    # -- embeddings, info, close -----------------------------------------------------------

    async def embed(self, request: EmbedRequest) -> Embeddings:
        raise Unsupported(f'"{self.name}" does not support embeddings with the mlx backend (mlx-lm has no pooling path)')

    def info(self) -> EngineInfo:
        kv_bytes = self._kv_token_bytes * self.n_ctx * self.parallel
        size = self._weights_bytes + kv_bytes
        return self.engine_info(
            size,
            on_device=self._unified,
            info={
                "mlx.model_bytes": self._weights_bytes,
                "mlx.dtype": self._dtype,
                "mlx.kv_cache_bytes": kv_bytes,
            },
            prefix_cache=msgspec.structs.replace(self.loop.prefix_cache),
        )

    async def close(self) -> None:
        await asyncio.to_thread(self.loop.stop)


def _weights(model: object) -> tuple[int, str, int]:
    """Bytes of the model's parameters, their dtype(s), and the bytes per element of the
    largest tensor (what activations and the KV cache use)."""
    from mlx.utils import tree_flatten

    arrays = [a for _, a in tree_flatten(model.parameters())]  # type: ignore[attr-defined]
    dtypes = sorted({str(a.dtype).removeprefix("mlx.core.") for a in arrays})
    largest = max(arrays, key=lambda a: a.size)
    return sum(a.nbytes for a in arrays), "/".join(dtypes), largest.itemsize


def _kv_token_bytes(model: object, itemsize: int) -> int:
    """KV cache bytes per token of context (keys and values of every layer), 0 if unknown."""
    args = getattr(model, "args", None)
    try:
        heads = args.num_attention_heads  # type: ignore[union-attr]
        kv_heads = getattr(args, "num_key_value_heads", None) or heads
        head_dim = getattr(args, "head_dim", None) or args.hidden_size // heads  # type: ignore[union-attr]
        layers = args.num_hidden_layers  # type: ignore[union-attr]
    except AttributeError:
        return 0
    return 2 * layers * kv_heads * head_dim * itemsize
