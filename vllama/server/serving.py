"""What the Ollama and OpenAI routes share: preparing engine requests and running them.

A stream is *primed* before the response starts: the model is scheduled, loaded and asked
for its first event, so that every failure up to there (unknown model, full queue, load
error, unsupported request) is answered with its real status; later failures end the
stream with an error line.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from litestar import Request

from vllama import admission, images
from vllama import options as opts
from vllama.core import Vllama
from vllama.durations import keep_alive_seconds
from vllama.engine import Backend, Engine
from vllama.errors import BadRequest, ClientGone, EngineError
from vllama.scheduler import Lease
from vllama.selection import Candidate
from vllama.server import metrics
from vllama.tool_calls import FORMATS, detect_format, parse_tool_calls, request_parser
from vllama.types import (
    ChatRequest,
    EmbedRequest,
    Event,
    EventStream,
    GenerateRequest,
    Message,
    ModelRef,
    RerankRequest,
    RerankScores,
    Think,
    ThinkLevel,
    Tool,
)

T = TypeVar("T")


@dataclass
class Run:
    """A primed stream: how long its model took to load (0 when it was loaded already), and
    its events, the first already fetched. The events hold the engine's slot until they end
    or are closed."""

    load_ns: int
    events: EventStream


def vllama_of(request: Request[Any, Any, Any]) -> Vllama:
    """The server's :class:`~vllama.core.Vllama`, from an HTTP request."""
    return request.app.state.vllama


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


async def tool_format(model: ModelRef, backend: type[Backend]) -> str | None:
    """How the model writes tool calls: the Modelfile's ``tool_parser`` (one of the core's
    formats or a parser of the backend's library), else what its chat template teaches."""
    named = model.parameters.get("tool_parser")
    if named is None:
        return detect_format(model.template)
    if named in FORMATS or (
        backend.parses_tool_calls and isinstance(named, str) and named in await asyncio.to_thread(backend.tool_parsers)
    ):
        return named
    extra = f" or a tool parser of the {backend.name} backend" if backend.parses_tool_calls else ""
    raise BadRequest(f"invalid tool_parser {str(named)[:100]!r}: use one of {', '.join(FORMATS)}{extra}")


async def check_reasoning_parser(model: ModelRef, backend: type[Backend]) -> None:
    """A Modelfile's ``reasoning_parser`` must name one of the backend's library (a 400 before any load)."""
    named = model.parameters.get("reasoning_parser")
    if named is None:
        return
    known = await asyncio.to_thread(backend.reasoning_parsers)
    if not (isinstance(named, str) and named in known):
        where = f"use one of {', '.join(sorted(known))}" if known else f"the {backend.name} backend has no reasoning parsers"
        raise BadRequest(f"invalid reasoning_parser {str(named)[:100]!r}: {where}")


def default_think(model: ModelRef, chosen: Candidate, request: GenerateRequest | ChatRequest) -> None:
    """As in Ollama, a model that can think does unless the request says otherwise (not for raw prompts)."""
    raw = isinstance(request, GenerateRequest) and request.raw
    if request.think is None and not raw and "thinking" in admission.capabilities(model, chosen):
        request.think = True


def with_model_prompt(model: ModelRef, messages: list[Message]) -> list[Message]:
    """Prepend the model's MESSAGE history and its SYSTEM prompt (unless the request has one)."""
    out = list(model.messages) + messages
    if model.system and not (messages and messages[0].role == "system"):
        out.insert(0, Message(role="system", content=model.system))
    return out


def merge_options(v: Vllama, model: ModelRef, request_options: dict[str, Any] | None) -> opts.RequestOptions:
    """Check a request's options (types and ranges, the model's limits and engine settings
    too) and merge them, once, over the server's engine defaults and the model's parameters."""
    options = opts.validate(request_options or {}, engine_settings=v.engine_settings)
    opts.check_for_model({**model.parameters, **options}, model.info)
    v.check_engine_settings(options, model)
    return opts.merge(v.settings.engine_defaults, model.parameters, options)


def with_extras(fields: dict[str, Any], options: dict[str, Any] | None, num_ctx: int | None) -> dict[str, Any]:
    """An API's own sampling fields as Ollama options, over the Ollama ``options`` and
    ``num_ctx`` that /v1 bodies may carry as extra fields: the API's own fields win."""
    if options is not None and not isinstance(options, dict):
        raise BadRequest("options must be an object")
    out = dict(options or {})
    if num_ctx is not None:
        out["num_ctx"] = num_ctx
    return out | fields


_THINK_LEVELS: dict[str, ThinkLevel] = {"low": "low", "medium": "medium", "high": "high", "max": "max"}


def parse_think(value: bool | str | None) -> Think:
    """Ollama's ``think``: true, false or a level; any other string is a 400, as in Ollama."""
    if value is None or isinstance(value, bool):
        return value
    if value in _THINK_LEVELS:
        return _THINK_LEVELS[value]
    raise BadRequest(f'invalid think value: "{value[:100]}" (must be "high", "medium", "low", "max", true, or false)')


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
    options: opts.RequestOptions,
    receive: Callable[[], Awaitable[Any]] | None = None,
) -> Run:
    """Prepare the request (the model's prompt, the tool format, the capability check),
    schedule it and fetch its first event, so that errors come before headers.

    With the ASGI ``receive`` of the HTTP request, a client that hangs up while the request
    waits in the queue or for its first token gives up its place at once (:class:`ClientGone`)."""
    started = now_ns()
    chosen = v.candidate_for(model)
    if isinstance(request, ChatRequest):
        request.messages = with_model_prompt(model, request.messages)
    if isinstance(request, ChatRequest) and request.tools:
        request.tool_format = await tool_format(model, chosen.backend) or "json"
    await check_reasoning_parser(model, chosen.backend)
    default_think(model, chosen, request)
    admission.check(model, chosen, request)
    if pictures := images.request_images(request):  # decoded off the event loop: a large image takes a while
        await asyncio.to_thread(images.check, pictures)

    def call(engine: Engine) -> EventStream:
        return engine.chat(request) if isinstance(request, ChatRequest) else engine.generate(request)

    held = contextlib.AsyncExitStack()  # the slot, then the stream: released in reverse

    async def first_event() -> tuple[Lease, Event, EventStream]:
        lease = await held.enter_async_context(v.scheduler.acquire(model, keep_alive=keep_alive, options=options))
        events = _transformed(lease.runner.backend, request, call(lease.engine))
        held.push_async_callback(events.aclose)
        first = await anext(events, None)
        if first is None:
            raise EngineError(f"the engine for {model.name} ended the stream without a result")
        return lease, first, events

    try:
        lease, first, events = await unless_disconnected(first_event(), receive)
    except BaseException:
        await held.aclose()
        raise
    return Run(lease.load_duration_ns, metrics.observe(v, model.name, started, now_ns(), _chain(first, events, held)))


async def unless_disconnected(work: Awaitable[T], receive: Callable[[], Awaitable[Any]] | None) -> T:
    """Await ``work``, cancelled (then :class:`ClientGone`) if the client disconnects first: the
    first event of a request, or the whole reply of a request that does not stream, so that a
    client that hangs up frees its slot at once instead of when its reply would have ended."""
    if receive is None:
        return await work
    task = asyncio.ensure_future(work)
    hangup = asyncio.ensure_future(_disconnect(receive))
    try:
        done, _ = await asyncio.wait({task, hangup}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        hangup.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise ClientGone


async def _disconnect(receive: Callable[[], Awaitable[Any]]) -> None:
    """Return when the client disconnects (the body has been read: nothing else arrives)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _transformed(backend: type[Backend], request: GenerateRequest | ChatRequest, events: EventStream) -> EventStream:
    """The engine's events through the core's stream transforms it needs."""
    if isinstance(request, ChatRequest) and request.tools and not backend.parses_tool_calls:
        return parse_tool_calls(events, request_parser(request))
    return events


async def _chain(first: Event, rest: EventStream, held: contextlib.AsyncExitStack) -> EventStream:
    async with held:
        yield first
        async for event in rest:
            yield event


async def embed_vectors(
    v: Vllama, model: ModelRef, inputs: list[str], *, truncate: bool, keep_alive: float | None, options: opts.RequestOptions
) -> tuple[list[list[float]], int, int]:
    """Embed inputs; return (raw vectors, prompt tokens, load ns)."""
    admission.check_embed(model, v.candidate_for(model))
    async with v.scheduler.acquire(model, keep_alive=keep_alive, options=options) as lease:
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


async def rerank_scores(
    v: Vllama,
    model: ModelRef,
    query: str,
    documents: list[str],
    *,
    truncate: bool,
    keep_alive: float | None,
    options: opts.RequestOptions,
) -> RerankScores:
    """Score each document's relevance to ``query``: by the engine where the model is a
    reranker, else as the cosine similarity of the query's and the document's embeddings,
    all embedded in one request."""
    scoring = admission.check_rerank(model, v.candidate_for(model))
    async with v.scheduler.acquire(model, keep_alive=keep_alive, options=options) as lease:
        if scoring == "cross-encoder":
            scored = await lease.engine.rerank(RerankRequest(query=query, documents=documents, truncate=truncate))
            if len(scored.scores) != len(documents):
                raise EngineError(f"the engine for {model.name} returned {len(scored.scores)} scores for {len(documents)} documents")
            return scored
        embedded = await lease.engine.embed(EmbedRequest(inputs=[query, *documents], truncate=truncate))
    first, *rest = (normalize(vector) for vector in embedded.vectors)
    scores = [sum(a * b for a, b in zip(first, vector, strict=True)) for vector in rest]
    return RerankScores(scores=scores, prompt_tokens=embedded.prompt_tokens, scoring="embedding-similarity")
