"""What the Ollama and OpenAI routes share: preparing engine requests and running them.

A stream is *primed* before the response starts: the model is scheduled, loaded and asked
for its first event, so that every failure up to there (unknown model, full queue, load
error, unsupported request) is answered with its real status; later failures end the
stream with an error line.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from vllama import options as opts
from vllama.core import Vllama
from vllama.durations import keep_alive_seconds
from vllama.engine import Backend, Engine
from vllama.errors import BadRequest, EngineError, Unsupported
from vllama.server import metrics
from vllama.types import ChatRequest, Event, GenerateRequest, Message, ModelRef, Tool


@dataclass
class Run:
    """A primed stream: load time, and the events (the first already fetched)."""

    load_ns: int
    events: AsyncIterator[Event]


def now_ns() -> int:
    return time.perf_counter_ns()


def parse_keep_alive(value: int | float | str | None) -> float | None:
    if value is None:
        return None
    try:
        return keep_alive_seconds(value)
    except ValueError as e:
        raise BadRequest(str(e)) from None


def decode_images(images: list[str] | None) -> list[bytes]:
    out = []
    for image in images or []:
        if image.startswith("data:") and "," in image:
            image = image.split(",", 1)[1]
        try:
            out.append(base64.b64decode(image, validate=True))
        except (binascii.Error, ValueError):
            raise BadRequest("invalid image data: images must be base64-encoded") from None
    return out


def parse_tools(tools: list[dict[str, Any]] | None) -> list[Tool]:
    try:
        return msgspec.convert(tools or [], list[Tool])
    except msgspec.ValidationError as e:
        raise BadRequest(f"invalid tools: {e}") from None


def check_model(model: ModelRef, *, chat: bool = False, tools: bool = False, think: Any = None, suffix: bool = False) -> None:
    """Refuse what the model itself cannot do (Ollama's capability errors)."""
    caps = model.capabilities
    if "completion" not in caps:
        raise Unsupported(f'"{model.name}" does not support {"chat" if chat else "generate"}')
    if tools and "tools" not in caps:
        raise Unsupported(f'"{model.name}" does not support tools')
    if think and "thinking" not in caps:
        raise Unsupported(f'"{model.name}" does not support thinking')
    if suffix and "insert" not in caps:
        raise Unsupported(f'"{model.name}" does not support insert')


def check_backend(backend: type[Backend], model: ModelRef, request: GenerateRequest | ChatRequest) -> None:
    """Refuse what the chosen engine cannot do, rather than ignore it silently."""
    needs = []
    if request.think:
        needs.append(("thinking", "thinking"))
    if request.format is not None:
        needs.append(("format", "structured output (format)"))
    if request.logprobs:
        needs.append(("logprobs", "logprobs"))
    if isinstance(request, ChatRequest):
        if request.tools:
            needs.append(("tools", "tools"))
        if any(m.images for m in request.messages):
            needs.append(("vision", "images"))
    elif request.images:
        needs.append(("vision", "images"))
    for cap, what in needs:
        if cap not in backend.capabilities:
            raise Unsupported(f'"{model.name}" does not support {what} with the {backend.name} backend')


def with_model_prompt(model: ModelRef, messages: list[Message]) -> list[Message]:
    """Prepend the model's MESSAGE history and its SYSTEM prompt (unless the request has one)."""
    out = list(model.messages) + messages
    if model.system and not (messages and messages[0].role == "system"):
        out.insert(0, Message(role="system", content=model.system))
    return out


def merge_options(v: Vllama, model: ModelRef, request_options: dict[str, Any] | None) -> tuple[dict[str, Any], Any]:
    """Validate request options; return them and the resolved SamplingOptions."""
    options = opts.validate(request_options or {}, engine_settings=v.engine_settings)
    return options, opts.sampling(model.parameters, options)


def check_format(value: Any) -> Any:
    if value in (None, ""):
        return None
    if value == "json" or isinstance(value, dict):
        return value
    raise BadRequest(f'invalid format: {value!r}; use "json" or a JSON schema object')


def check_top_logprobs(n: int) -> None:
    if not 0 <= n <= 20:
        raise BadRequest("top_logprobs must be between 0 and 20")


async def start(
    v: Vllama,
    model: ModelRef,
    request: GenerateRequest | ChatRequest,
    *,
    keep_alive: float | None,
    options: dict[str, Any],
) -> Run:
    """Schedule the request and fetch its first event, so that errors come before headers."""
    started = now_ns()
    call: Callable[[Engine], AsyncIterator[Event]] = (
        (lambda e: e.chat(request)) if isinstance(request, ChatRequest) else (lambda e: e.generate(request))  # type: ignore[arg-type]
    )

    async def events() -> AsyncIterator[Any]:
        async with v.scheduler.acquire(model, keep_alive=keep_alive, options=options) as lease:
            check_backend(lease.runner.backend, model, request)
            yield lease.load_duration_ns
            async for event in call(lease.engine):
                yield event

    stream = events()
    try:
        load_ns = await anext(stream)
        first = await anext(stream)
    except StopAsyncIteration:
        raise EngineError(f"the engine for {model.name} ended the stream without a result") from None
    except BaseException:
        await stream.aclose()
        raise
    return Run(load_ns, metrics.observe(v, model.name, started, now_ns(), _chain(first, stream)))


async def _chain(first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    try:
        yield first
        async for event in rest:
            yield event
    finally:
        await rest.aclose()  # type: ignore[attr-defined]


async def embed_vectors(v: Vllama, model: ModelRef, inputs: list[str], *, truncate: bool, keep_alive: float | None, options: dict[str, Any]) -> tuple[list[list[float]], int, int]:
    """Embed inputs; return (raw vectors, prompt tokens, load ns)."""
    from vllama.types import EmbedRequest

    async with v.scheduler.acquire(model, keep_alive=keep_alive, options=options) as lease:
        if "embedding" not in lease.runner.backend.capabilities:
            raise Unsupported(f'"{model.name}" does not support embeddings with the {lease.runner.backend.name} backend')
        result = await lease.engine.embed(EmbedRequest(inputs=inputs, truncate=truncate))
        return result.vectors, result.prompt_tokens, lease.load_duration_ns


def normalize(vector: list[float], dimensions: int | None = None) -> list[float]:
    """Truncate to ``dimensions`` (if given) and scale to unit length, as Ollama's /api/embed does."""
    if dimensions is not None:
        if not 1 <= dimensions <= len(vector):
            raise BadRequest(f"dimensions must be between 1 and {len(vector)}")
        vector = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else list(vector)
