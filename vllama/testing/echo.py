"""A deterministic backend for tests: it answers with what it was asked.

Register it with ``VLLAMA_PLUGIN_MODULES=vllama.testing.echo`` (or ``pm.register``).
It runs any model format and exercises every part of the engine contract: streaming,
stop strings, num_predict, format, thinking, tool calls, logprobs, embeddings and rerank.
Engine settings: ``echo_delay`` (seconds per token) and ``echo_allow_crash`` (the word
``#crash`` then kills the worker process when it is reached, to test engine isolation).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import msgspec

from vllama.engine import Backend, Engine, EngineSettings, Support
from vllama.errors import ContextOverflow
from vllama.hookspecs import hookimpl
from vllama.types import (
    ChatRequest,
    Delta,
    Done,
    Embeddings,
    EmbedRequest,
    EngineInfo,
    EventStream,
    GenerateRequest,
    Hardware,
    LoadSettings,
    ModelRef,
    RerankRequest,
    RerankScores,
    SamplingOptions,
    TokenLogprob,
    ToolCall,
    ToolCallFunction,
    TopLogprob,
)

EMBEDDING_DIM = 8


class EchoSettings(EngineSettings):
    """The echo engine's settings."""

    #: Seconds per token, to test what happens while a request runs.
    echo_delay: Annotated[float, msgspec.Meta(ge=0, le=60)] = 0.0
    #: Let the word ``#crash`` kill the worker process.
    echo_allow_crash: bool = False


class EchoBackend(Backend):
    name: ClassVar[str] = "echo"
    formats: ClassVar[frozenset[str]] = frozenset({"gguf", "safetensors", "mlx"})
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"completion", "chat", "embedding", "tools", "thinking", "format", "logprobs", "rerank"}
    )
    isolated: ClassVar[bool] = False
    #: It emits one structured call of the first tool offered.
    parses_tool_calls: ClassVar[bool] = True
    settings_type: ClassVar[type[EngineSettings]] = EchoSettings

    @classmethod
    def tool_parsers(cls) -> frozenset[str]:
        """A format name of its own, as an engine library's parser registry would have."""
        return frozenset({"echo"})

    @classmethod
    def supports(cls, model: ModelRef, hardware: Hardware) -> Support:
        return Support(score=1, reason="echoes its input", parallel=4)

    @classmethod
    async def load(cls, model: ModelRef, hardware: Hardware, settings: LoadSettings) -> Engine:
        return EchoEngine(model, settings)


class IsolatedEchoBackend(EchoBackend):
    """The echo backend in a worker process, for isolation tests."""

    name: ClassVar[str] = "echo-isolated"
    isolated: ClassVar[bool] = True


class TextEchoBackend(EchoBackend):
    """Echoes text only, so that the core parses tool calls out of what it streams."""

    name: ClassVar[str] = "echo-text"
    parses_tool_calls: ClassVar[bool] = False

    @classmethod
    async def load(cls, model: ModelRef, hardware: Hardware, settings: LoadSettings) -> Engine:
        return EchoEngine(model, settings, emit_calls=False)


class PlainEchoBackend(EchoBackend):
    """An echo without tools, thinking, format or logprobs: for capability checks."""

    name: ClassVar[str] = "echo-plain"
    capabilities: ClassVar[frozenset[str]] = frozenset({"completion", "chat", "embedding"})


class EchoEngine(Engine):
    def __init__(self, model: ModelRef, settings: LoadSettings, *, emit_calls: bool = True) -> None:
        self.model = model
        self.emit_calls = emit_calls
        self.settings = settings
        engine = EchoSettings.of(settings.engine)
        self.delay = engine.echo_delay
        self.allow_crash = engine.echo_allow_crash
        #: Sequences running right now; tests read it to see cancellation free a slot.
        self.active = 0

    def generate(self, request: GenerateRequest) -> EventStream:
        return self._stream(request.prompt, request, tools=None)

    def chat(self, request: ChatRequest) -> EventStream:
        last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        return self._stream(last, request, tools=request.tools if self.emit_calls else None)

    async def _stream(self, text: str, request: GenerateRequest | ChatRequest, tools: list | None) -> EventStream:
        tokens = tokenize(text)
        if len(tokens) > self.settings.num_ctx:
            raise ContextOverflow("the input length exceeds the context length")
        self.active += 1
        start = time.perf_counter_ns()
        try:
            if request.think:  # thinking is generated too: it takes a token's time
                await asyncio.sleep(self.delay)
                yield Delta(thinking=f"The user said {len(tokens)} words.")
            if tools:
                call = ToolCall(function=ToolCallFunction(name=tools[0].function.name, arguments={"text": text}, index=0))
                yield Delta(tool_calls=[call])
            reply = json.dumps({"echo": text}) if request.format is not None else text
            out, reason = _limit(tokenize(reply), request.options)
            for token in out:
                if self.allow_crash and token.strip() == "#crash":
                    os._exit(17)
                await asyncio.sleep(self.delay)  # also lets concurrent streams interleave
                logprobs = [_logprob(token, request.top_logprobs)] if request.logprobs else []
                yield Delta(text=token, logprobs=logprobs)
            elapsed = time.perf_counter_ns() - start
            yield Done(
                reason=reason,
                prompt_tokens=len(tokens),
                completion_tokens=len(out),
                prompt_eval_ns=1000 * len(tokens),
                eval_ns=max(elapsed, 1),
                context=list(range(len(tokens) + len(out))),
            )
        finally:
            self.active -= 1

    async def embed(self, request: EmbedRequest) -> Embeddings:
        vectors, count = [], 0
        for text in request.inputs:
            tokens = tokenize(text)
            if len(tokens) > self.settings.num_ctx and not request.truncate:
                raise ContextOverflow("the input length exceeds the context length")
            tokens = tokens[: self.settings.num_ctx]
            count += len(tokens)
            digest = hashlib.sha256("".join(tokens).encode()).digest()
            vectors.append([(b - 127.5) / 42.5 for b in digest[:EMBEDDING_DIM]])
        return Embeddings(vectors=vectors, prompt_tokens=count)

    async def rerank(self, request: RerankRequest) -> RerankScores:
        """Score each document by the share of the query's words it holds."""
        query = {t.strip().lower() for t in tokenize(request.query)}
        scores, count = [], len(tokenize(request.query)) * len(request.documents)
        for document in request.documents:
            words = {t.strip().lower() for t in tokenize(document)}
            scores.append(len(query & words) / max(len(query), 1))
            count += len(tokenize(document))
        return RerankScores(scores=scores, prompt_tokens=count)

    def info(self) -> EngineInfo:
        path = Path(self.model.path)
        size = path.stat().st_size if path.is_file() else 0
        return EngineInfo(size=size, context_length=self.settings.num_ctx, parallel=self.settings.parallel)

    async def close(self) -> None:
        pass


def _logprob(token: str, top: int) -> TokenLogprob:
    alternatives = [TopLogprob(token=token, logprob=0.0, bytes=list(token.encode()))]
    alternatives += [TopLogprob(token=f"<alt{i}>", logprob=-10.0 - i) for i in range(1, top)]
    return TokenLogprob(token=token, logprob=0.0, bytes=list(token.encode()), top_logprobs=alternatives[:top])


def tokenize(text: str) -> list[str]:
    """Words with their trailing whitespace: joining the tokens gives the text back."""
    return re.findall(r"\S+\s*|\s+", text)


def _limit(tokens: list[str], options: SamplingOptions) -> tuple[list[str], Literal["stop", "length"]]:
    text = "".join(tokens)
    for stop in options.stop:
        if stop and stop in text:
            return tokenize(text[: text.index(stop)]), "stop"
    if options.num_predict >= 0 and len(tokens) > options.num_predict:
        return tokens[: options.num_predict], "length"
    return tokens, "stop"


@hookimpl
def register_backends(register) -> None:
    register(EchoBackend)
    register(IsolatedEchoBackend)
    register(TextEchoBackend)
    register(PlainEchoBackend)
