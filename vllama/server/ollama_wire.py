"""Ollama's wire format (api/types.go): request and response bodies.

Requests accept every field Ollama defines, deprecated ones included, and ignore the others as
Ollama does (:mod:`vllama.server.lenient` logs them). Responses omit what Ollama omits
(``omit_defaults``) and always carry what Ollama always sends (required fields, and the
durations of a final chunk).
"""

from __future__ import annotations

from typing import Any

import msgspec

from vllama.types import PrefixCacheStats

KeepAlive = int | float | str | None
Format = str | dict[str, Any] | None
Think = bool | str | None


class Request(msgspec.Struct, kw_only=True):
    """Base policy for request bodies."""


class Response(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Base policy for response bodies."""


# -- generate / chat ------------------------------------------------------------------


class GenerateBody(Request, kw_only=True):
    model: str = ""
    prompt: str = ""
    suffix: str = ""
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    stream: bool | None = None
    raw: bool = False
    format: Format = None
    keep_alive: KeepAlive = None
    images: list[str] | None = None
    options: dict[str, Any] | None = None
    think: Think = None
    truncate: bool | None = None
    shift: bool | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    _debug_render_only: bool = msgspec.field(default=False, name="_debug_render_only")


class WireToolCallFunction(msgspec.Struct, kw_only=True):
    index: int = 0
    name: str
    arguments: dict[str, Any] = {}


class WireToolCall(msgspec.Struct, omit_defaults=True, kw_only=True):
    function: WireToolCallFunction
    id: str = ""


class WireMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    role: str
    content: str = ""
    thinking: str = ""
    images: list[str] | None = None
    tool_calls: list[WireToolCall] | None = None
    tool_name: str = ""
    tool_call_id: str = ""


class ChatBody(Request, kw_only=True):
    model: str = ""
    messages: list[WireMessage] | None = None
    tools: list[dict[str, Any]] | None = None
    stream: bool | None = None
    format: Format = None
    keep_alive: KeepAlive = None
    options: dict[str, Any] | None = None
    think: Think = None
    truncate: bool | None = None
    shift: bool | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    _debug_render_only: bool = msgspec.field(default=False, name="_debug_render_only")


class WireTopLogprob(msgspec.Struct, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] | None = None


class WireLogprob(msgspec.Struct, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[WireTopLogprob] | None = None


class Metrics(Response, kw_only=True):
    """A final chunk's counts. The durations are set (0 included) on final chunks only."""

    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0


class GenerateChunk(Metrics, kw_only=True):
    model: str
    created_at: str
    response: str
    thinking: str = ""
    done: bool
    done_reason: str = ""
    context: list[int] | None = None
    tool_calls: list[WireToolCall] | None = None
    logprobs: list[WireLogprob] | None = None


class ChatChunkMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    role: str
    content: str
    thinking: str = ""
    tool_calls: list[WireToolCall] | None = None


class ChatChunk(Metrics, kw_only=True):
    model: str
    created_at: str
    message: ChatChunkMessage
    done: bool
    done_reason: str = ""
    logprobs: list[WireLogprob] | None = None
    #: vllama's: messages of a chat longer than the context left out to fit it (final chunk).
    truncated_messages: int = 0


# -- embeddings ----------------------------------------------------------------------


class EmbedBody(Request, kw_only=True):
    model: str = ""
    input: str | list[str] | None = None
    truncate: bool | None = None
    dimensions: int | None = None
    keep_alive: KeepAlive = None
    options: dict[str, Any] | None = None


class EmbedResponse(Response, kw_only=True):
    model: str
    embeddings: list[list[float]]
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0


class EmbeddingsBody(Request, kw_only=True):
    model: str = ""
    prompt: str = ""
    keep_alive: KeepAlive = None
    options: dict[str, Any] | None = None


class EmbeddingsResponse(msgspec.Struct):
    embedding: list[float]


# -- models --------------------------------------------------------------------------


class Details(msgspec.Struct, kw_only=True):
    parent_model: str = ""
    format: str = ""
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""


class ListModel(msgspec.Struct, kw_only=True):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: Details
    capabilities: list[str] | None = None


class ListResponse(msgspec.Struct):
    models: list[ListModel]


class PsModel(msgspec.Struct, kw_only=True):
    """Ollama's fields, then vllama's: backend, readiness (``ready``, ``loading``, or ``failed``
    with its ``error``), running and queued requests, parallelism, and the prefix cache's
    counters where the engine keeps one."""

    name: str
    model: str
    size: int
    digest: str
    details: Details
    expires_at: str
    size_vram: int
    context_length: int
    backend: str = ""
    status: str = "ready"
    error: str = ""
    running: int = 0
    queued: int = 0
    parallel: int = 1
    prefix_cache: PrefixCacheStats | None = None


class PsResponse(msgspec.Struct):
    models: list[PsModel]


class ShowBody(Request, kw_only=True):
    model: str = ""
    name: str = ""
    verbose: bool = False
    system: str | None = None
    template: str | None = None
    options: dict[str, Any] | None = None


class ShowResponse(Response, kw_only=True):
    license: str = ""
    modelfile: str = ""
    parameters: str = ""
    template: str = ""
    system: str = ""
    details: Details = msgspec.field(default_factory=Details)
    messages: list[WireMessage] | None = None
    model_info: dict[str, Any] = {}
    capabilities: list[str] = []
    modified_at: str = ""


class CopyBody(Request, kw_only=True):
    source: str = ""
    destination: str = ""


class DeleteBody(Request, kw_only=True):
    model: str = ""
    name: str = ""


class PullBody(Request, kw_only=True):
    model: str = ""
    name: str = ""
    insecure: bool = False
    stream: bool | None = None
    username: str = ""
    password: str = ""


class CreateBody(Request, kw_only=True):
    model: str = ""
    name: str = ""
    from_: str = msgspec.field(default="", name="from")
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    template: str | None = None
    license: str | list[str] | None = None
    system: str | None = None
    parameters: dict[str, Any] | None = None
    messages: list[WireMessage] | None = None
    renderer: str = ""
    parser: str = ""
    requires: str = ""
    info: dict[str, Any] | None = None
    quantize: str = ""
    quantization: str = ""
    stream: bool | None = None


class ProgressResponse(Response, kw_only=True):
    status: str
    digest: str = ""
    total: int = 0
    completed: int = 0


class VersionResponse(msgspec.Struct):
    version: str


class ErrorResponse(msgspec.Struct):
    error: str
