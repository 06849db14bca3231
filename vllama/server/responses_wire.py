"""OpenAI's Responses API wire format (``POST /v1/responses``), stateless as Ollama serves it.

Unknown request fields are ignored. Input items and their content parts arrive as JSON
objects and are decoded into the Structs here one by one, by their ``type``
(:mod:`vllama.server.responses_convert`), so that an unsupported type gets a 400 that names it.
"""

from __future__ import annotations

from typing import Any

import msgspec

# -- request ------------------------------------------------------------------------------


class Reasoning(msgspec.Struct, kw_only=True):
    effort: str | None = None
    summary: str | None = None


class TextConfig(msgspec.Struct, kw_only=True):
    format: dict[str, Any] | None = None


class ResponsesBody(msgspec.Struct, kw_only=True):
    model: str
    #: Ollama's extras on /v1 (extra body fields): how long the model stays loaded, any
    #: Ollama option, and the context length.
    keep_alive: int | float | str | None = None
    options: dict[str, Any] | None = None
    num_ctx: int | None = None
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: Reasoning | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False
    #: Nothing is stored, whatever this says (``previous_response_id`` is not a field: ignored
    #: and logged, as any unknown field, as Ollama ignores it).
    store: bool | None = None
    include: list[str] | None = None
    truncation: str | None = None
    metadata: dict[str, Any] | None = None


class MessageItem(msgspec.Struct, kw_only=True):
    """A message (``type`` may be left out): content as a string or a list of parts."""

    role: str
    content: str | list[dict[str, Any]] = ""


class FunctionCallItem(msgspec.Struct, kw_only=True):
    """A call the model made in an earlier turn."""

    call_id: str
    name: str
    arguments: str = ""


class FunctionCallOutputItem(msgspec.Struct, kw_only=True):
    """The result of a call: a string or a list of content parts."""

    call_id: str
    output: str | list[dict[str, Any]] = ""


class SummaryText(msgspec.Struct, kw_only=True):
    text: str
    type: str = "summary_text"


class ReasoningText(msgspec.Struct, kw_only=True):
    text: str
    type: str = "reasoning_text"


class ReasoningItem(msgspec.Struct, kw_only=True):
    """Reasoning from an earlier turn: vllama puts the thinking text in ``encrypted_content``
    and in the summary (it encrypts nothing), and reads it back from either."""

    summary: list[SummaryText] = []
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None


class TextPart(msgspec.Struct, kw_only=True):
    """``input_text`` or ``output_text``."""

    text: str


class RefusalPart(msgspec.Struct, kw_only=True):
    refusal: str


class ImagePart(msgspec.Struct, kw_only=True):
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class FunctionTool(msgspec.Struct, kw_only=True):
    """A function tool, in the Responses API's flat shape."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


# -- response -----------------------------------------------------------------------------


class OutputText(msgspec.Struct, kw_only=True):
    text: str
    type: str = "output_text"
    annotations: list[Any] = []
    logprobs: list[Any] = []


class MessageOutput(msgspec.Struct, kw_only=True):
    id: str
    status: str
    content: list[OutputText]
    type: str = "message"
    role: str = "assistant"


class FunctionCallOutput(msgspec.Struct, kw_only=True):
    id: str
    status: str
    call_id: str
    name: str
    arguments: str
    type: str = "function_call"


class ReasoningOutput(msgspec.Struct, kw_only=True):
    id: str
    summary: list[SummaryText]
    encrypted_content: str | None = None
    type: str = "reasoning"


OutputItem = MessageOutput | FunctionCallOutput | ReasoningOutput


class InputTokensDetails(msgspec.Struct, kw_only=True):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(msgspec.Struct, kw_only=True):
    reasoning_tokens: int = 0


class Usage(msgspec.Struct, kw_only=True):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails = msgspec.field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = msgspec.field(default_factory=OutputTokensDetails)


class ResponseError(msgspec.Struct, kw_only=True):
    code: str
    message: str


class IncompleteDetails(msgspec.Struct, kw_only=True):
    reason: str


class TextFormat(msgspec.Struct, kw_only=True):
    format: dict[str, Any]


class Response(msgspec.Struct, kw_only=True):
    id: str
    created_at: int
    model: str
    status: str
    output: list[OutputItem]
    object: str = "response"
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    previous_response_id: None = None
    tools: list[dict[str, Any]] = []
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    text: TextFormat = msgspec.field(default_factory=lambda: TextFormat(format={"type": "text"}))
    reasoning: Reasoning | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    truncation: str = "disabled"
    usage: Usage | None = None
    store: bool = False
    background: bool = False
    service_tier: str = "default"
    metadata: dict[str, Any] = {}


# -- stream events (each carries its ``type`` and ``sequence_number``) --------------------------


class ResponseEvent(msgspec.Struct, kw_only=True):
    """response.created / in_progress / completed / incomplete / failed."""

    type: str
    sequence_number: int
    response: Response


class OutputItemEvent(msgspec.Struct, kw_only=True):
    """response.output_item.added / done."""

    type: str
    sequence_number: int
    output_index: int
    item: OutputItem


class ContentPartEvent(msgspec.Struct, kw_only=True):
    """response.content_part.added / done."""

    type: str
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    part: OutputText


class TextDeltaEvent(msgspec.Struct, kw_only=True):
    type: str
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[Any] = []


class TextDoneEvent(msgspec.Struct, kw_only=True):
    type: str
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[Any] = []


class SummaryPartEvent(msgspec.Struct, kw_only=True):
    """response.reasoning_summary_part.added / done."""

    type: str
    sequence_number: int
    item_id: str
    output_index: int
    summary_index: int
    part: SummaryText


class SummaryTextDeltaEvent(msgspec.Struct, kw_only=True):
    type: str
    sequence_number: int
    item_id: str
    output_index: int
    summary_index: int
    delta: str


class SummaryTextDoneEvent(msgspec.Struct, kw_only=True):
    type: str
    sequence_number: int
    item_id: str
    output_index: int
    summary_index: int
    text: str


class ArgumentsDeltaEvent(msgspec.Struct, kw_only=True):
    type: str
    sequence_number: int
    item_id: str
    output_index: int
    delta: str


class ArgumentsDoneEvent(msgspec.Struct, kw_only=True):
    type: str
    sequence_number: int
    item_id: str
    output_index: int
    arguments: str


StreamEvent = (
    ResponseEvent
    | OutputItemEvent
    | ContentPartEvent
    | TextDeltaEvent
    | TextDoneEvent
    | SummaryPartEvent
    | SummaryTextDeltaEvent
    | SummaryTextDoneEvent
    | ArgumentsDeltaEvent
    | ArgumentsDoneEvent
)
