"""The vLLM engine: one model in vLLM's async engine (AsyncLLM). Its engine core, which
holds the weights and the KV cache, runs in its own process; closing shuts it down, so the
memory returns."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any

from vllm import AsyncEngineArgs
from vllm.exceptions import VLLMClientError
from vllm.inputs import TokensPrompt, tokens_input
from vllm.pooling_params import PoolingParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError

from vllama.engine import Engine
from vllama.errors import BadRequest, ContextOverflow, EngineError, Unsupported
from vllama.thinking import Splitter, Tags, splitter
from vllama.tool_calls import parse_tool_calls, request_parser
from vllama.truncation import Fitted, fit
from vllama.types import (
    ChatRequest,
    Delta,
    Done,
    Embeddings,
    EmbedRequest,
    EngineInfo,
    EventStream,
    Format,
    GenerateRequest,
    ModelRef,
    RerankRequest,
    RerankScores,
    SamplingOptions,
    TokenLogprob,
    ToolCall,
    TopLogprob,
)
from vllama_vllm.image_inputs import ImageInputs
from vllama_vllm.plan import Plan
from vllama_vllm.prompts import Prompt, PromptBuilder
from vllama_vllm.sampling import required_calls_schema, sampling_kwargs, sampling_params, short_whitespace
from vllama_vllm.stats import LiveStats, logger_factory
from vllama_vllm.tool_parsing import VllmParsing, parsing_for, reasoning_name

#: The warm-up request: one greedy token.
_ONE_TOKEN = SamplingOptions(temperature=0.0, num_predict=1)
#: Engine processes inherit the environment at start: starts that set it take turns.
_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def engine_args(plan: Plan) -> AsyncEngineArgs:
    """vLLM's engine arguments for a plan (starts nothing)."""
    return AsyncEngineArgs(**plan.kwargs)


def start(ref: ModelRef, plan: Plan) -> VllmEngine:
    """Start the engine and wait until vLLM is ready. Blocks: run it in a thread."""
    stats = LiveStats()
    # Engine processes are spawned: forking a threaded server is unsafe.
    env = {"VLLM_WORKER_MULTIPROC_METHOD": "spawn", **plan.env}
    with _ENV_LOCK, _environment(env):
        try:
            llm = AsyncLLM.from_engine_args(engine_args(plan), stat_loggers=[logger_factory(stats)])
        except Exception as e:  # vLLM raises many kinds; the user gets one clear error
            raise EngineError(f"failed to load model {ref.name}: {type(e).__name__}: {e}") from None
    return VllmEngine(llm, ref, plan, stats)


class VllmEngine(Engine):
    """A running vLLM engine serving one model."""

    def __init__(self, llm: AsyncLLM, ref: ModelRef, plan: Plan, stats: LiveStats) -> None:
        self.name = ref.name
        self._llm: AsyncLLM | None = llm
        self._plan = plan
        self._stats = stats
        config = llm.vllm_config
        self._dtype = str(config.model_config.dtype).removeprefix("torch.")
        self._max_len = config.model_config.max_model_len
        self._pooling = config.model_config.runner_type == "pooling"
        self._reranker = "rerank" in ref.capabilities
        self._tokenizer = llm.get_tokenizer()
        images = ImageInputs(config.model_config, self._tokenizer) if config.model_config.is_multimodal_model else None
        self._prompts = PromptBuilder(self._tokenizer, ref, images)
        self._reasoning = reasoning_name(ref, self._prompts.thinking_format)
        cache = config.cache_config
        self._kv_tokens = (cache.num_gpu_blocks or 0) * cache.block_size

    async def warm_up(self) -> None:
        """Run one tiny request, so that the first forward pass (slow on some platforms) is part
        of loading rather than of the first user's wait."""
        if self._reranker:
            await self.rerank(RerankRequest(query="warm", documents=["up"]))
            return
        if self._pooling:
            await self._embed_one(self._prompts.tokenize("warm up", special=True))
            return
        hello = Fitted(Prompt(self._prompts.tokenize("Hello", special=True)))
        async for _ in self._stream(lambda: hello, GenerateRequest(prompt="", options=_ONE_TOKEN)):
            pass

    @property
    def alive(self) -> bool:
        """False once the engine core has died; the scheduler then reloads the model."""
        return self._llm is not None and not self._llm.errored

    # -- generation ------------------------------------------------------------------------

    def generate(self, request: GenerateRequest) -> EventStream:
        return self._stream(lambda: Fitted(self._prompts.generate(request)), request, None if request.raw else self._parsing(request))

    def chat(self, request: ChatRequest) -> EventStream:
        parsing = self._parsing(request)
        # the context holds the prompt and at least one generated token
        fitted = lambda: fit(request, self._prompts.chat, lambda p: len(p.tokens), self._max_len - 1)
        events = self._stream(fitted, request, parsing)
        if not request.tools:
            return events
        lenient_only = parsing is not None and parsing.parser.tool_parser is not None
        return parse_tool_calls(events, request_parser(request, lenient_only=lenient_only))

    def _parsing(self, request: GenerateRequest | ChatRequest) -> VllmParsing | None:
        return parsing_for(self._tokenizer, request, self._reasoning)

    @staticmethod
    def _format(request: GenerateRequest | ChatRequest) -> Format:
        """The output constraint: ``format``, or, when a tool call is required, vLLM's own JSON
        schema for a list of calls of the offered tools (one call without parallel calls),
        as vLLM's server builds it for ``tool_choice``."""
        if isinstance(request, ChatRequest) and request.tools and request.tool_choice == "required":
            return required_calls_schema(request.tools, parallel=request.parallel_tool_calls)
        return request.format

    async def _stream(
        self, prepare: Callable[[], Fitted[Prompt]], request: GenerateRequest | ChatRequest, parsing: VllmParsing | None = None
    ) -> EventStream:
        """Run one request; with ``parsing``, its output goes through vLLM's parsers. A request
        that thinks without a vLLM reasoning parser is split by the core's parser."""
        if self._pooling:
            raise Unsupported(f'"{self.name}" does not support generate')
        fitted = prepare()
        prepared = fitted.prompt
        prompt = prepared.tokens
        if not prompt:
            yield Done(reason="stop")
            return
        if len(prompt) >= self._max_len:
            raise ContextOverflow("the input length exceeds the context length")
        top = max(0, request.top_logprobs) if request.logprobs or request.top_logprobs else None
        split = self._splitter(request, prompt, parsing)
        fmt, length = self._format(request), self._max_len
        kwargs = sampling_kwargs(
            request.options,
            prompt_tokens=len(prompt),
            max_model_len=length,
            format=fmt,
            top_logprobs=top,
            end_tokens=self._prompts.end_tokens(request),
        )
        # format with thinking: think freely up to the closing tag, then answer in the format
        close = self._closing_tag(request)
        answer_kwargs = None
        if close is not None and "structured_outputs" in kwargs:
            answer_kwargs = {**kwargs, "structured_outputs": short_whitespace(kwargs["structured_outputs"])}
            kwargs = {**kwargs, "stop": [*(kwargs["stop"] or []), close], "include_stop_str_in_output": True}
            del kwargs["structured_outputs"]
        params = sampling_params(**kwargs)
        started = time.perf_counter_ns()
        first = 0
        generated: list[int] = []
        reason: str | None = None
        # With images, vLLM's processor expands each placeholder into the image's tokens.
        prompt_tokens = len(prompt)
        context = prompt
        while True:
            engine_input = tokens_input(context)
            if prepared.multi_modal_data:
                engine_input = TokensPrompt(prompt_token_ids=context, multi_modal_data=prepared.multi_modal_data)
            outputs = self._running.generate(engine_input, params, uuid.uuid4().hex)
            guarded = self._guard(outputs)
            then_answer = False
            try:
                async for out in guarded:
                    if context is prompt:
                        prompt_tokens = len(out.prompt_token_ids or prompt)
                    piece = out.outputs[0]
                    if piece.token_ids and not first:
                        first = time.perf_counter_ns()
                    generated.extend(piece.token_ids)
                    then_answer = answer_kwargs is not None and out.finished and piece.stop_reason == close
                    last = out.finished and not then_answer
                    logprobs = _logprobs(piece.token_ids, piece.logprobs, top) if top is not None else []
                    thinking, text, tool_calls = "", piece.text, list[ToolCall]()
                    if parsing is not None:
                        parsed = parsing.feed(piece.text, piece.token_ids, prompt, finished=last)
                        thinking, text, tool_calls = parsed.thinking, parsed.text, parsed.calls
                    if split is not None:
                        thinking, text = _joined(split.feed(text), split.flush() if last else ("", ""))
                    if thinking or text or logprobs or tool_calls:
                        yield Delta(text=text, thinking=thinking, logprobs=logprobs, tool_calls=tool_calls)
                    if out.finished:
                        reason = piece.finish_reason
            finally:
                if reason is None:  # the consumer went away: closing vLLM's stream aborts the request
                    await guarded.aclose()
                    await outputs.aclose()
            room = params.max_tokens - len(generated) if params.max_tokens is not None else 0
            if not then_answer or answer_kwargs is None or room <= 0:
                reason = "length" if then_answer else reason
                break
            context = prompt + generated
            params = sampling_params(**{**answer_kwargs, "max_tokens": room})
            answer_kwargs, reason = None, None
        end = time.perf_counter_ns()
        first = first or end
        yield Done(
            reason="length" if reason == "length" else "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=len(generated),
            prompt_eval_ns=max(1, first - started),
            eval_ns=max(1, end - first),
            context=prompt + generated,
            dropped_messages=fitted.dropped,
        )

    def _closing_tag(self, request: GenerateRequest | ChatRequest) -> str | None:
        """The tag that ends the thinking of a reply to ``request``; None when it does not think in tags."""
        fmt = self._prompts.thinking_format
        raw = isinstance(request, GenerateRequest) and request.raw
        return fmt.close if isinstance(fmt, Tags) and request.think and not raw else None

    def _splitter(self, request: GenerateRequest | ChatRequest, prompt: list[int], parsing: VllmParsing | None) -> Splitter | None:
        """The core's splitter, for a request that thinks and that no vLLM reasoning parser serves."""
        if (parsing is not None and parsing.parser.reasoning_parser is not None) or (isinstance(request, GenerateRequest) and request.raw):
            return None
        return splitter(self._prompts.thinking_format, request.think, self._prompts.text(prompt[-16:]))

    async def _guard(self, outputs: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
        """vLLM's stream, with an engine that died turned into an EngineError, and a request vLLM
        refuses (a prompt whose images' tokens do not fit the context) into a BadRequest."""
        try:
            async for out in outputs:
                yield out
        except VLLMClientError as e:
            raise BadRequest(str(e)) from None
        except EngineDeadError:
            raise EngineError(f"the engine for {self.name} stopped unexpectedly; it will reload on the next request") from None

    # -- embeddings ------------------------------------------------------------------------

    async def embed(self, request: EmbedRequest) -> Embeddings:
        if not self._pooling:
            raise Unsupported(f'"{self.name}" does not support embeddings')
        prompts = [self._embedding_tokens(text, request.truncate) for text in request.inputs]
        vectors = await asyncio.gather(*(self._embed_one(p) for p in prompts))
        return Embeddings(vectors=list(vectors), prompt_tokens=sum(len(p) for p in prompts))

    def _embedding_tokens(self, text: str, truncate: bool) -> list[int]:
        ids = self._prompts.tokenize(text, special=True)
        if len(ids) <= self._max_len:
            return ids
        if not truncate:
            raise ContextOverflow("the input length exceeds the context length")
        return list(self._tokenizer(text, truncation=True, max_length=self._max_len)["input_ids"])

    async def _embed_one(self, prompt: list[int]) -> list[float]:
        result = None
        async for out in self._guard(self._running.encode(tokens_input(prompt), PoolingParams(task="embed"), uuid.uuid4().hex)):
            result = out
        if result is None:
            raise EngineError(f"the engine for {self.name} returned no embedding")
        return [float(x) for x in result.outputs.data.tolist()]

    # -- rerank ----------------------------------------------------------------------------

    async def rerank(self, request: RerankRequest) -> RerankScores:
        """Score each pair with the cross-encoder, as vLLM's scoring does: the tokenizer joins
        query and document (its separator and token types), vLLM's classify pooling scores them."""
        if not self._reranker:
            raise Unsupported(f'"{self.name}" is not a reranker')
        pairs = [self._pair(request.query, document, request.truncate) for document in request.documents]
        scores = await asyncio.gather(*(self._score_one(ids, params) for ids, params in pairs))
        return RerankScores(scores=list(scores), prompt_tokens=sum(len(ids) for ids, _ in pairs))

    def _pair(self, query: str, document: str, truncate: bool) -> tuple[list[int], PoolingParams]:
        from vllm.entrypoints.pooling.scoring.utils import compress_token_type_ids

        encoded = self._tokenizer(text=query, text_pair=document)
        if len(encoded["input_ids"]) > self._max_len:
            if not truncate:
                raise ContextOverflow("the input length exceeds the context length")
            query_tokens = len(self._tokenizer(text=query, text_pair="")["input_ids"])
            if query_tokens + 2 > self._max_len:  # only the document can be cut, down to a token
                raise ContextOverflow("the query length exceeds the context length")
            encoded = self._tokenizer(text=query, text_pair=document, truncation="only_second", max_length=self._max_len)
        params = PoolingParams(task="classify")
        if (types := encoded.get("token_type_ids")) is not None:
            params.extra_kwargs = {"compressed_token_type_ids": compress_token_type_ids(list(types))}
        return list(encoded["input_ids"]), params

    async def _score_one(self, prompt: list[int], params: PoolingParams) -> float:
        result = None
        async for out in self._guard(self._running.encode(tokens_input(prompt), params, uuid.uuid4().hex)):
            result = out
        if result is None:
            raise EngineError(f"the engine for {self.name} returned no score")
        return float(result.outputs.data.reshape(-1)[0])

    # -- info, close -----------------------------------------------------------------------

    def info(self) -> EngineInfo:
        kv_bytes = self._kv_tokens * self._plan.kv_bytes_per_token
        kwargs = self._plan.kwargs
        size = self._plan.gpu_claim_bytes if self._plan.on_gpu else self._plan.weights_bytes + kv_bytes
        return EngineInfo(
            size=size,
            size_vram=size if self._plan.on_gpu else 0,
            context_length=self._max_len,
            parallel=int(kwargs.get("max_num_seqs", 1)),
            info={
                "vllm.max_model_len": self._max_len,
                "vllm.max_num_seqs": int(kwargs.get("max_num_seqs", 1)),
                "vllm.kv_cache_bytes": kv_bytes,
                "vllm.kv_cache_tokens": self._kv_tokens,
                "vllm.weights_bytes": self._plan.weights_bytes,
                "vllm.dtype": self._dtype,
                "vllm.tensor_parallel_size": int(kwargs.get("tensor_parallel_size", 1)),
                "vllm.pipeline_parallel_size": int(kwargs.get("pipeline_parallel_size", 1)),
                "vllm.data_parallel_size": int(kwargs.get("data_parallel_size", 1)),
                **({"vllm.gpu_memory_utilization": kwargs["gpu_memory_utilization"]} if self._plan.on_gpu else {}),
                **self._stats.as_info(),
            },
        )

    @property
    def _running(self) -> AsyncLLM:
        if self._llm is None:
            raise EngineError(f"the engine for {self.name} is not running")
        return self._llm

    async def close(self) -> None:
        llm, self._llm = self._llm, None  # dropped once shut down: vLLM's finalizer has nothing left to do
        if llm is not None:
            await asyncio.to_thread(llm.shutdown)


def _joined(a: tuple[str, str], b: tuple[str, str]) -> tuple[str, str]:
    return a[0] + b[0], a[1] + b[1]


def _logprobs(token_ids: Any, entries: Any, top: int) -> list[TokenLogprob]:
    """vLLM's per-token logprob dicts (sampled token plus the ``top`` best) as Ollama's."""
    out = []
    for token_id, entry in zip(token_ids, entries or (), strict=False):
        chosen = entry[token_id]
        best = sorted((lp for lp in entry.values() if lp.rank is not None and lp.rank <= top), key=lambda lp: lp.rank)
        text = chosen.decoded_token or ""
        out.append(
            TokenLogprob(
                token=text,
                logprob=chosen.logprob,
                bytes=list(text.encode()),
                top_logprobs=[_top(lp) for lp in best],
            )
        )
    return out


def _top(lp: Any) -> TopLogprob:
    text = lp.decoded_token or ""
    return TopLogprob(token=text, logprob=lp.logprob, bytes=list(text.encode()))
