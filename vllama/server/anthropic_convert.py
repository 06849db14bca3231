"""Anthropic's Messages API to the core's types and back, as Ollama maps them: the system
prompt and content blocks become messages, ``tool_use`` / ``tool_result`` blocks become tool
calls and tool messages, ``thinking`` becomes ``think``; the engine's events become content
blocks (thinking, text, tool_use) and Anthropic's stream of events."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any, Literal

from vllama.errors import BadRequest
from vllama.server import anthropic_wire as a
from vllama.server import serving
from vllama.types import (
    ChatRequest,
    Delta,
    Done,
    EventStream,
    Message,
    SamplingOptions,
    Think,
    Tool,
    ToolCall,
    ToolCallFunction,
    ToolFunction,
)

_EFFORTS: dict[str, Think] = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "max"}


def check(body: a.MessagesBody) -> None:
    """The fields Anthropic's API requires, refused as Ollama refuses them."""
    if not body.model:
        raise BadRequest("model is required")
    if body.max_tokens <= 0:
        raise BadRequest("max_tokens is required and must be positive")
    if not body.messages:
        raise BadRequest("messages is required")


def options_of(body: a.MessagesBody) -> dict[str, Any]:
    """Anthropic's sampling fields as Ollama options, over the body's extra ``options`` and
    ``num_ctx`` (unset ones keep the model's defaults)."""
    fields: dict[str, Any] = {"num_predict": body.max_tokens}
    for key, value in (("temperature", body.temperature), ("top_p", body.top_p), ("top_k", body.top_k)):
        if value is not None:
            fields[key] = value
    if body.stop_sequences:
        fields["stop"] = body.stop_sequences
    return serving.with_extras(fields, body.options, body.num_ctx)


def system_of(system: str | list[dict[str, Any]] | None) -> list[Message]:
    """The system prompt (a string or text blocks) as a system message, if there is one."""
    if isinstance(system, list):
        system = "".join(str(b.get("text", "")) for b in system if b.get("type") == "text")
    return [Message(role="system", content=system)] if system else []


def messages_of(body: a.MessagesBody | a.CountTokensBody) -> list[Message]:
    """The conversation as core messages: each ``tool_result`` block becomes a tool message
    (before the user's own text), named after the ``tool_use`` it answers."""
    out = system_of(body.system)
    names: dict[str, str] = {}  # tool_use id -> tool name
    for m in body.messages:
        role = m.role.lower()
        if role not in ("user", "assistant"):
            raise BadRequest(f"invalid role {m.role!r}: use user or assistant")
        if isinstance(m.content, str):
            out.append(Message(role=role, content=m.content))
            continue
        text: list[str] = []
        images: list[bytes] = []
        calls: list[ToolCall] = []
        results: list[Message] = []
        thinking = ""
        for block in m.content:
            kind = block.get("type")
            if kind == "text":
                text.append(str(block.get("text") or ""))
            elif kind == "image":
                images.append(_image(block))
            elif kind == "tool_use":
                calls.append(_tool_call(block, len(calls)))
                names[calls[-1].id] = calls[-1].function.name
            elif kind == "tool_result":
                results.append(_tool_result(block, names))
            elif kind == "thinking":
                thinking = str(block.get("thinking") or "")
            # other block types (redacted thinking, documents, server tools) are skipped, as Ollama does
        out.extend(results)
        if any(text) or images or calls or thinking:
            out.append(Message(role=role, content="".join(text), images=images, tool_calls=calls, thinking=thinking))
    return out


def _image(block: dict[str, Any]) -> bytes:
    source = block.get("source")
    if not isinstance(source, dict):
        raise BadRequest("invalid image source")
    if source.get("type") != "base64":
        raise BadRequest(f"invalid image source type: {source.get('type')}. Only base64 images are supported.")
    return serving.decode_images([str(source.get("data") or "")])[0]


def _tool_call(block: dict[str, Any], index: int) -> ToolCall:
    if not block.get("id"):
        raise BadRequest("tool_use block missing required 'id' field")
    if not block.get("name"):
        raise BadRequest("tool_use block missing required 'name' field")
    arguments = block.get("input") or {}
    if not isinstance(arguments, dict):
        raise BadRequest("tool_use block 'input' must be an object")
    return ToolCall(id=str(block["id"]), function=ToolCallFunction(name=str(block["name"]), arguments=arguments, index=index))


def _tool_result(block: dict[str, Any], names: dict[str, str]) -> Message:
    content = block.get("content")
    text, images = "", []
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(str(b.get("text") or "") for b in content if isinstance(b, dict) and b.get("type") == "text")
        images = [_image(b) for b in content if isinstance(b, dict) and b.get("type") == "image"]
    use_id = str(block.get("tool_use_id") or "")
    return Message(role="tool", content=text, images=images, tool_call_id=use_id, tool_name=names.get(use_id, ""))


def tools_of(body: a.MessagesBody) -> tuple[list[Tool], Literal["auto", "required"], bool]:
    """The tools offered, whether a call is required, and whether calls may come in parallel,
    from ``tools`` and ``tool_choice`` (auto, any, tool with a name, none)."""
    tools = []
    for t in body.tools or []:
        if t.type not in (None, "custom"):
            raise BadRequest(f"unsupported tool type {t.type!r}: only custom (function) tools are supported")
        tools.append(Tool(function=ToolFunction(name=t.name, description=t.description, parameters=t.input_schema)))
    choice = body.tool_choice or {"type": "auto"}
    parallel = not choice.get("disable_parallel_tool_use", False)
    kind = choice.get("type")
    if kind == "auto":
        return tools, "auto", parallel
    if kind == "none":
        return [], "auto", parallel
    if kind == "any":
        if not tools:
            raise BadRequest('tool_choice "any" needs tools')
        return tools, "required", parallel
    if kind == "tool":
        named = [t for t in tools if t.function.name == choice.get("name")]
        if not named:
            raise BadRequest(f"tool_choice names {choice.get('name')!r}, which is not in tools")
        return named, "required", parallel
    raise BadRequest(f"invalid tool_choice type {kind!r}: use auto, any, tool or none")


def think_of(body: a.MessagesBody, *, model_thinks: bool) -> Think:
    """``thinking`` (enabled / disabled), else ``output_config.effort``, as ``think``. As in
    Ollama, a request for thinking to a model that cannot think is not an error: clients such
    as Claude Code ask every model to think."""
    kind = (body.thinking or {}).get("type")
    think: Think = True if kind == "enabled" else False if kind == "disabled" else None
    if think is None:
        think = _EFFORTS.get(str((body.output_config or {}).get("effort", "")).strip().lower())
    return think if model_thinks else None


def chat_request(body: a.MessagesBody, sampling: SamplingOptions, *, model_thinks: bool) -> ChatRequest:
    """The core's chat request for a Messages body; ``sampling`` holds the merged options."""
    tools, choice, parallel = tools_of(body)
    return ChatRequest(
        messages=messages_of(body),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        options=sampling,
        think=think_of(body, model_thinks=model_thinks),
    )


def estimate_tokens(body: a.MessagesBody | a.CountTokensBody) -> int:
    """Input tokens estimated as Ollama does (a quarter of the characters): the engine's
    tokenizer lives with the loaded model, and the count must not need a load."""
    text = len(json.dumps(body.system)) if body.system else 0
    for m in body.messages:
        text += len(m.role) + (len(m.content) if isinstance(m.content, str) else len(json.dumps(m.content)))
    for t in body.tools or []:
        text += len(t.name) + len(t.description) + len(json.dumps(t.input_schema))
    return max(text // 4, 1 if body.messages or body.system else 0)


def message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


def _tool_use(call: ToolCall) -> a.ToolUseBlock:
    return a.ToolUseBlock(id=call.id or f"toolu_{secrets.token_hex(12)}", name=call.function.name, input=call.function.arguments)


def stop_reason(done: Done, called: bool) -> a.StopReason:
    if called:
        return "tool_use"
    return "max_tokens" if done.reason == "length" else "end_turn"


async def message(events: EventStream, mid: str, model: str) -> a.Message:
    """The whole reply as one message: thinking, then text, then each tool call."""
    text, thinking, calls, done = [], [], [], Done()
    async for event in events:
        if isinstance(event, Delta):
            text.append(event.text)
            thinking.append(event.thinking)
            calls.extend(event.tool_calls)
        else:
            done = event
    content: list[a.ContentBlock] = []
    if any(thinking):
        content.append(a.ThinkingBlock(thinking="".join(thinking)))
    if any(text):
        content.append(a.TextBlock(text="".join(text)))
    content.extend(_tool_use(c) for c in calls)
    usage = a.Usage(input_tokens=done.prompt_tokens, output_tokens=done.completion_tokens)
    return a.Message(id=mid, model=model, content=content, stop_reason=stop_reason(done, bool(calls)), usage=usage)


async def stream(events: EventStream, mid: str, model: str, input_estimate: int) -> AsyncIterator[tuple[str, a.StreamEvent]]:
    """Anthropic's events for the reply, each with its name: one content block per run of
    thinking or text, and one per tool call (its whole input in one ``input_json_delta``)."""
    start = a.Message(id=mid, model=model, content=[], usage=a.Usage(input_tokens=input_estimate, output_tokens=0))
    yield "message_start", a.MessageStart(message=start)
    yield "ping", a.Ping()
    index, open_kind, called = 0, "", False

    def close() -> a.ContentBlockStop:
        nonlocal index, open_kind
        stop = a.ContentBlockStop(index=index)
        index, open_kind = index + 1, ""
        return stop

    async for event in events:
        if isinstance(event, Done):
            if open_kind:
                yield "content_block_stop", close()
            delta = a.StopDelta(stop_reason=stop_reason(event, called))
            yield (
                "message_delta",
                a.MessageDelta(delta=delta, usage=a.Usage(input_tokens=event.prompt_tokens, output_tokens=event.completion_tokens)),
            )
            yield "message_stop", a.MessageStop()
            return
        for kind, piece in (("thinking", event.thinking), ("text", event.text)):
            if not piece:
                continue
            if open_kind != kind:
                if open_kind:
                    yield "content_block_stop", close()
                block: a.ContentBlock = a.ThinkingBlock(thinking="") if kind == "thinking" else a.TextBlock(text="")
                yield "content_block_start", a.ContentBlockStart(index=index, content_block=block)
                open_kind = kind
            delta_piece = a.ThinkingDelta(thinking=piece) if kind == "thinking" else a.TextDelta(text=piece)
            yield "content_block_delta", a.ContentBlockDelta(index=index, delta=delta_piece)
        for call in event.tool_calls:
            if open_kind:
                yield "content_block_stop", close()
            use = _tool_use(call)
            yield "content_block_start", a.ContentBlockStart(index=index, content_block=a.ToolUseBlock(id=use.id, name=use.name, input={}))
            yield "content_block_delta", a.ContentBlockDelta(index=index, delta=a.InputJsonDelta(partial_json=json.dumps(use.input)))
            open_kind, called = "tool_use", True
            yield "content_block_stop", close()


def stream_error(message: str) -> tuple[str, a.ErrorBody]:
    """The event that ends a stream that failed after its first event."""
    return "error", a.error_body(message)
