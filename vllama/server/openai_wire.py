"""OpenAI's wire format for /v1 (as Ollama serves it). Unknown request fields are ignored,
as OpenAI clients send many that a local server has no use for."""

from __future__ import annotations

from typing import Any

import msgspec


class ChatMessage(msgspec.Struct, kw_only=True):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class ChatCompletionBody(msgspec.Struct, kw_only=True):
    model: str
    #: Ollama's extras on /v1 (extra body fields): how long the model stays loaded, any
    #: Ollama option, and the context length.
    keep_alive: int | float | str | None = None
    options: dict[str, Any] | None = None
    num_ctx: int | None = None
    messages: list[ChatMessage]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    reasoning: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    n: int | None = None
    logit_bias: dict[str, float] | None = None
    ignore_eos: bool = False


class CompletionBody(msgspec.Struct, kw_only=True):
    model: str
    #: Ollama's extras on /v1 (extra body fields): how long the model stays loaded, any
    #: Ollama option, and the context length.
    keep_alive: int | float | str | None = None
    options: dict[str, Any] | None = None
    num_ctx: int | None = None
    prompt: str | list[str]
    suffix: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logprobs: int | None = None
    n: int | None = None
    logit_bias: dict[str, float] | None = None
    echo: bool = False
    ignore_eos: bool = False


class EmbeddingsBody(msgspec.Struct, kw_only=True):
    model: str
    #: Ollama's extras on /v1 (extra body fields): how long the model stays loaded, any
    #: Ollama option, and the context length.
    keep_alive: int | float | str | None = None
    options: dict[str, Any] | None = None
    num_ctx: int | None = None
    input: str | list[Any]
    dimensions: int | None = None
    encoding_format: str = "float"


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class FunctionCall(msgspec.Struct):
    name: str
    arguments: str


class ToolCall(msgspec.Struct, kw_only=True):
    id: str
    index: int
    type: str = "function"
    function: FunctionCall


class ResponseMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] | None = None


class TopLogprob(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int] | None


class LogprobContent(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(msgspec.Struct):
    content: list[LogprobContent]


class ChatChoice(msgspec.Struct, kw_only=True):
    index: int = 0
    message: ResponseMessage
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(msgspec.Struct, kw_only=True):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    system_fingerprint: str = "fp_vllama"
    choices: list[ChatChoice]
    usage: Usage


class ChunkChoice(msgspec.Struct, kw_only=True):
    index: int = 0
    delta: ResponseMessage
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str = "fp_vllama"
    choices: list[ChunkChoice]
    usage: Usage | None = None


class CompletionChoice(msgspec.Struct, kw_only=True):
    text: str
    index: int = 0
    finish_reason: str | None = None
    logprobs: None = None


class Completion(msgspec.Struct, kw_only=True):
    id: str
    object: str = "text_completion"
    created: int
    model: str
    system_fingerprint: str = "fp_vllama"
    choices: list[CompletionChoice]
    usage: Usage | None = None


class Embedding(msgspec.Struct, kw_only=True):
    object: str = "embedding"
    embedding: list[float] | str
    index: int


class EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class Model(msgspec.Struct, kw_only=True):
    id: str
    object: str = "model"
    created: int
    owned_by: str


class ModelList(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[Model]


class ErrorDetail(msgspec.Struct, kw_only=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


def error_body(message: str, status: int = 500, *, param: str | None = None, code: str | None = None) -> ErrorBody:
    kind = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error", 404: "not_found_error"}.get(
        status, "api_error"
    )
    return ErrorBody(ErrorDetail(message=message, type=kind, param=param, code=code))
