"""The MLX engine: a model loaded by mlx-lm and the batch loop that serves it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from vllama.engine import Engine
from vllama.errors import ContextOverflow, Unsupported
from vllama.streams import Channel
from vllama.tool_calls import parse_tool_calls
from vllama.types import (
    ChatRequest,
    Done,
    EmbedRequest,
    Embeddings,
    EngineInfo,
    Event,
    GenerateRequest,
    LoadSettings,
    ModelRef,
)
from vllama_mlx import sampling
from vllama_mlx.batch_loop import BatchLoop
from vllama_mlx.loading import load_model
from vllama_mlx.prompts import Prompts
from vllama_mlx.sequence import Sequence
from vllama_mlx.tool_parsing import module_name, parser_for

#: Finished sequences whose caches are kept for prefix reuse, and the bytes they may hold.
PROMPT_CACHE_ENTRIES = 16
PROMPT_CACHE_BYTES = 1 << 30


class MlxEngine(Engine):
    """A loaded model. The constructor blocks while it loads; run it in a thread.

    Each of ``settings.parallel`` sequences gets ``settings.num_ctx`` tokens of context.
    """

    def __init__(self, ref: ModelRef, settings: LoadSettings, *, unified_memory: bool = False) -> None:
        self.name = ref.name
        self._ref = ref
        self._n_ctx = settings.num_ctx
        self._parallel = max(1, settings.parallel)
        self._unified = unified_memory
        self._loop = BatchLoop(
            lambda: load_model(ref, str(settings.engine.get("dtype", "auto"))),
            parallel=self._parallel,
            prefill_step=settings.num_batch,
            cache_entries=PROMPT_CACHE_ENTRIES,
            cache_bytes=PROMPT_CACHE_BYTES,
        )
        loaded = self._loop.wait_loaded()
        self._tokenizer = loaded.tokenizer
        self._vocab_size = int(getattr(getattr(loaded.model, "args", None), "vocab_size", 0) or len(loaded.tokenizer))
        self._prompts = Prompts(loaded.tokenizer, ref)
        self._weights_bytes, self._dtype, itemsize = _weights(loaded.model)
        self._kv_token_bytes = _kv_token_bytes(loaded.model, itemsize)

    @property
    def active_sequences(self) -> int:
        """Sequences in the running batch."""
        return self._loop.active

    # -- generation ------------------------------------------------------------------------

    def generate(self, request: GenerateRequest) -> AsyncIterator[Event]:
        return self._stream(lambda: self._prompts.for_generate(request), request)

    def chat(self, request: ChatRequest) -> AsyncIterator[Event]:
        events = self._stream(lambda: self._prompts.for_chat(request), request)
        if not request.tools:
            return events
        return parse_tool_calls(events, parser_for(module_name(self._ref, self._tokenizer, request.tool_format), request))

    async def _stream(self, prepare: Callable[[], list[int]], request: GenerateRequest | ChatRequest) -> AsyncIterator[Event]:
        prompt = prepare()
        if not prompt:
            yield Done(reason="stop")
            return
        if len(prompt) > self._n_ctx:
            raise ContextOverflow("the input length exceeds the context length")
        options = request.options
        if options.num_predict == 0:
            yield Done(reason="length", prompt_tokens=len(prompt), context=prompt)
            return
        plan = sampling.plan(options, vocab_size=self._vocab_size, n_ctx=self._n_ctx)
        sampler, processors = sampling.build(plan)
        room = max(1, self._n_ctx - len(prompt))
        channel = Channel(asyncio.get_running_loop())
        seq = Sequence(
            prompt,
            sampler=sampler,
            processors=processors,
            detokenizer=self._tokenizer.detokenizer,
            channel=channel,
            max_tokens=min(options.num_predict, room) if options.num_predict > 0 else room,
            ignore_eos=options.ignore_eos,
            stop=options.stop,
            top_logprobs=max(0, request.top_logprobs) if request.logprobs or request.top_logprobs else None,
        )
        self._loop.submit(seq)
        async with contextlib.aclosing(channel.events(lambda: self._loop.cancel(seq))) as events:
            async for event in events:
                yield event

    # -- embeddings, info, close -----------------------------------------------------------

    async def embed(self, request: EmbedRequest) -> Embeddings:
        raise Unsupported(f'"{self.name}" does not support embeddings with the mlx backend (mlx-lm has no pooling path)')

    def info(self) -> EngineInfo:
        kv_bytes = self._kv_token_bytes * self._n_ctx * self._parallel
        size = self._weights_bytes + kv_bytes
        return EngineInfo(
            size=size,
            size_vram=size if self._unified else 0,
            context_length=self._n_ctx,
            parallel=self._parallel,
            info={
                "mlx.model_bytes": self._weights_bytes,
                "mlx.dtype": self._dtype,
                "mlx.kv_cache_bytes": kv_bytes,
                "mlx.prompt_cache_bytes": self._loop.cache_nbytes,
                "mlx.cached_prompts": self._loop.cached_prompts,
            },
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._loop.stop)


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
