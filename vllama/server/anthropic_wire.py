"""Anthropic's Messages API wire format (/v1/messages), as Ollama serves it. Unknown request
fields are ignored; content blocks arrive as objects and are checked where they are read
(:mod:`vllama.server.anthropic_convert`), so that an unknown block type is skipped, not refused."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


# -- requests ------------------------------------------------------------------------------


class MessageParam(msgspec.Struct, kw_only=True):
    role: str
    #: A string, or a list of content blocks (text, image, tool_use, tool_result, thinking).
    content: str | list[dict[str, Any]]


class ToolParam(msgspec.Struct, kw_only=True):
    name: str
    description: str = ""
    input_schema: dict[str, Any] = {}
    #: "custom" (or absent) for a function; Anthropic's server tools have other types.
    type: str | None = None


class MessagesBody(msgspec.Struct, kw_only=True):
    model: str
    #: Ollama's extras on /v1 (extra body fields): how long the model stays loaded, any
    #: Ollama option, and the context length.
    keep_alive: int | float | str | None = None
    options: dict[str, Any] | None = None
    num_ctx: int | None = None
    messages: list[MessageParam]
    max_tokens: int = 0
    system: str | list[dict[str, Any]] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: dict[str, Any] | None = None
    #: ``{"type": "enabled", "budget_tokens": N}`` or ``{"type": "disabled"}``.
    thinking: dict[str, Any] | None = None
    #: ``{"effort": "low" | "medium" | "high" | "max"}``.
    output_config: dict[str, Any] | None = None


class CountTokensBody(msgspec.Struct, kw_only=True):
    model: str
    messages: list[MessageParam]
    system: str | list[dict[str, Any]] | None = None
    tools: list[ToolParam] | None = None


class CountTokensResponse(msgspec.Struct, kw_only=True):
    input_tokens: int


# -- responses -----------------------------------------------------------------------------


class TextBlock(msgspec.Struct, kw_only=True, tag_field="type", tag="text"):
    text: str


class ThinkingBlock(msgspec.Struct, kw_only=True, tag_field="type", tag="thinking"):
    thinking: str
    #: Anthropic signs its own thinking; a local model's is not signed.
    signature: str = ""


class ToolUseBlock(msgspec.Struct, kw_only=True, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


ContentBlock = TextBlock | ThinkingBlock | ToolUseBlock


class Usage(msgspec.Struct, kw_only=True):
    input_tokens: int
    output_tokens: int


class Message(msgspec.Struct, kw_only=True, tag_field="type", tag="message"):
    id: str
    model: str
    content: list[ContentBlock]
    role: str = "assistant"
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None
    usage: Usage


# -- streaming events (each sent as ``event: <type>`` and its JSON) ---------------------------


class MessageStart(msgspec.Struct, kw_only=True, tag_field="type", tag="message_start"):
    message: Message


class Ping(msgspec.Struct, tag_field="type", tag="ping"):
    pass


class ContentBlockStart(msgspec.Struct, kw_only=True, tag_field="type", tag="content_block_start"):
    index: int
    content_block: ContentBlock


class TextDelta(msgspec.Struct, kw_only=True, tag_field="type", tag="text_delta"):
    text: str


class ThinkingDelta(msgspec.Struct, kw_only=True, tag_field="type", tag="thinking_delta"):
    thinking: str


class InputJsonDelta(msgspec.Struct, kw_only=True, tag_field="type", tag="input_json_delta"):
    partial_json: str


class ContentBlockDelta(msgspec.Struct, kw_only=True, tag_field="type", tag="content_block_delta"):
    index: int
    delta: TextDelta | ThinkingDelta | InputJsonDelta


class ContentBlockStop(msgspec.Struct, kw_only=True, tag_field="type", tag="content_block_stop"):
    index: int


class StopDelta(msgspec.Struct, kw_only=True):
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None


class MessageDelta(msgspec.Struct, kw_only=True, tag_field="type", tag="message_delta"):
    delta: StopDelta
    usage: Usage


class MessageStop(msgspec.Struct, tag_field="type", tag="message_stop"):
    pass


class ErrorDetail(msgspec.Struct, kw_only=True):
    type: str
    message: str


class ErrorBody(msgspec.Struct, kw_only=True, tag_field="type", tag="error"):
    error: ErrorDetail


StreamEvent = MessageStart | Ping | ContentBlockStart | ContentBlockDelta | ContentBlockStop | MessageDelta | MessageStop | ErrorBody

#: Anthropic's error type for each status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_body(message: str, status: int = 500) -> ErrorBody:
    """Anthropic's error object for an HTTP status."""
    return ErrorBody(error=ErrorDetail(type=ERROR_TYPES.get(status, "api_error"), message=message))
