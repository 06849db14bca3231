"""The Responses API's wire types to the core's and back: input items to chat messages, as
Ollama maps them, and the engine's events to output items and the named stream events that
build them (one builder for both, so a streamed response ends as the whole one would be)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal, TypeVar

import msgspec

from vllama.errors import BadRequest
from vllama.server import openai_convert, serving
from vllama.server import responses_wire as r
from vllama.server.openai_limits import InvalidParameter
from vllama.types import ChatRequest, Delta, Done, EventStream, Format, Message, SamplingOptions, Tool, ToolCall, ToolCallFunction

T = TypeVar("T")
#: A named stream event: (its ``event:`` name, its body).
Named = tuple[str, r.StreamEvent]

_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}


def _decode(value: Any, kind: type[T], where: str) -> T:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as e:
        raise BadRequest(f"invalid {where}: {e}") from None


def content_of(content: str | list[dict[str, Any]], where: str) -> tuple[str, list[bytes]]:
    """The text and images of a message's (or a call result's) content."""
    if isinstance(content, str):
        return content, []
    text, images = [], []
    for i, part in enumerate(content):
        at = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            text.append(_decode(part, r.TextPart, at).text)
        elif kind == "refusal":
            text.append(_decode(part, r.RefusalPart, at).refusal)
        elif kind == "input_image":
            url = _decode(part, r.ImagePart, at).image_url or ""
            if not url.startswith("data:"):
                raise BadRequest(f"{at}: images must be base64 data URLs in image_url (file_id and web URLs are not supported)")
            images.extend(serving.decode_images([url]))
        elif kind == "input_file":
            raise BadRequest(f"{at}: file inputs are not supported")
        else:
            raise BadRequest(f"{at}: unsupported content type {kind!r}: use input_text, output_text, refusal or input_image")
    return "".join(text), images


def _arguments(text: str, where: str) -> dict[str, Any]:
    try:
        args = json.loads(text or "{}")
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise BadRequest(f"{where}: arguments must be a JSON object string")
    return args


def _answers_last_call(out: list[Message], items: list[Any], i: int) -> bool:
    """Is item ``i`` (an assistant message) replayed between the last message's calls and the
    output of one of them? Then it belongs to that message, as in Ollama."""
    following = items[i + 1] if i + 1 < len(items) else None
    if not (isinstance(following, dict) and following.get("type") == "function_call_output" and out):
        return False
    return out[-1].role == "assistant" and any(c.id == following.get("call_id") for c in out[-1].tool_calls)


def messages_of(instructions: str | None, items: str | list[dict[str, Any]] | None) -> list[Message]:
    """``instructions`` and ``input`` as chat messages: instructions as the system message, a
    string as one user message; function calls join the assistant message before them, and a
    reasoning item's text becomes the thinking of the assistant turn after it."""
    if items is None or items == []:
        raise InvalidParameter("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    out = [Message(role="system", content=instructions)] if instructions else []
    if isinstance(items, str):
        return [*out, Message(role="user", content=items)]
    thinking = ""  # from a reasoning item, for the assistant turn that follows it
    names: dict[str, str] = {}  # call_id -> function name, for call outputs
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = (item.get("type") or ("message" if "role" in item else None)) if isinstance(item, dict) else None
        if kind == "message":
            message = _decode(item, r.MessageItem, where)
            role = _ROLES.get(message.role)
            if role is None:
                raise BadRequest(f"{where}: invalid role {message.role!r}: use user, system, developer or assistant")
            text, images = content_of(message.content, f"{where}.content")
            if role == "assistant" and _answers_last_call(out, items, i):
                last = out[-1]
                last.content = "\n".join(t for t in (last.content, text) if t)
                last.images = [*last.images, *images]
                last.thinking, thinking = thinking or last.thinking, ""
                continue
            out.append(Message(role=role, content=text, images=images))
            if role == "assistant":
                out[-1].thinking, thinking = thinking, ""
        elif kind == "function_call":
            call = _decode(item, r.FunctionCallItem, where)
            names[call.call_id] = call.name
            if not (out and out[-1].role == "assistant"):
                out.append(Message(role="assistant"))
            last = out[-1]
            function = ToolCallFunction(name=call.name, arguments=_arguments(call.arguments, where), index=len(last.tool_calls))
            last.tool_calls = [*last.tool_calls, ToolCall(id=call.call_id, function=function)]
            last.thinking, thinking = thinking or last.thinking, ""
        elif kind == "function_call_output":
            result = _decode(item, r.FunctionCallOutputItem, where)
            text, images = content_of(result.output, f"{where}.output")
            out.append(
                Message(role="tool", content=text, images=images, tool_call_id=result.call_id, tool_name=names.get(result.call_id, ""))
            )
        elif kind == "reasoning":
            reasoning = _decode(item, r.ReasoningItem, where)
            thinking = (
                reasoning.encrypted_content
                or "".join(s.text for s in reasoning.summary)
                or "".join(c.text for c in reasoning.content or [])
            )
        elif kind is None:
            raise BadRequest(f"{where}: an input item needs a type (or a role, for a message)")
        elif kind == "item_reference":
            raise BadRequest(f"{where}: item references need stored responses, and none are stored: send the item itself")
        else:
            raise BadRequest(
                f"{where}: unsupported input item type {kind!r}: use message, function_call, function_call_output or reasoning"
            )
    if thinking:
        out.append(Message(role="assistant", thinking=thinking))
    return out


def tools_of(tools: list[dict[str, Any]] | None) -> list[Tool]:
    """Function tools, from the Responses API's flat shape; any other tool type is a 400."""
    specs = []
    for i, tool in enumerate(tools or []):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise InvalidParameter(
                f"tools[{i}]: tool type {kind!r} is not supported: only function tools are",
                param=f"tools[{i}].type",
                code="unsupported_value",
            )
        f = _decode(tool, r.FunctionTool, f"tools[{i}]")
        specs.append(
            {"type": "function", "function": {"name": f.name, "description": f.description or "", "parameters": f.parameters or {}}}
        )
    return serving.parse_tools(specs)


def tool_choice_of(choice: str | dict[str, Any] | None, tools: list[Tool]) -> tuple[list[Tool], Literal["auto", "required"]]:
    """The Responses API's ``tool_choice`` (a mode, ``{"type": "function", "name": ...}`` or
    ``{"type": "allowed_tools", "mode": ..., "tools": [...]}``), as chat completions' one."""
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            if not isinstance(name := choice.get("name"), str) or not name:
                raise BadRequest('invalid tool_choice: a function choice is {"type": "function", "name": ...}')
            choice = {"type": "function", "function": {"name": name}}
        elif kind == "allowed_tools":
            allowed = {t.get("name") for t in choice.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"}
            tools = [t for t in tools if t.function.name in allowed]
            choice = choice.get("mode", "auto")
            if choice not in ("auto", "required"):
                raise BadRequest('invalid tool_choice: the mode of allowed_tools is "auto" or "required"')
        else:
            raise BadRequest(f"tool_choice type {kind!r} is not supported: use none, auto, required, a function or allowed_tools")
    return openai_convert.tool_choice_of(choice, tools)


def format_of(text: r.TextConfig | None) -> Format:
    """``text.format``: json_object as "json", json_schema as its schema."""
    fmt = text.format if text else None
    if not fmt:
        return None
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        if not isinstance(schema := fmt.get("schema"), dict):
            raise BadRequest("text.format.schema must be an object")
        return schema
    raise BadRequest(f"invalid text.format type {kind!r}: use text, json_object or json_schema")


def options_of(body: r.ResponsesBody) -> dict[str, Any]:
    """The request's sampling fields as Ollama options, over the body's extra ``options`` and
    ``num_ctx``: temperature defaults to 1.0, as in Ollama (top_p to the model's own)."""
    fields: dict[str, Any] = {}
    if body.temperature is not None:
        fields["temperature"] = body.temperature
    if body.top_p is not None:
        fields["top_p"] = body.top_p
    if body.max_output_tokens is not None:
        fields["num_predict"] = body.max_output_tokens
    return {"temperature": 1.0, **serving.with_extras(fields, body.options, body.num_ctx)}


def chat_request(body: r.ResponsesBody, sampling: SamplingOptions) -> ChatRequest:
    """The core's request for a response; ``sampling`` holds the merged options."""
    tools, choice = tool_choice_of(body.tool_choice, tools_of(body.tools))
    return ChatRequest(
        messages=messages_of(body.instructions, body.input),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=body.parallel_tool_calls is not False,
        options=sampling,
        format=format_of(body.text),
        think=openai_convert.think_of_effort(body.reasoning.effort if body.reasoning else None, "reasoning.effort"),
    )


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class Output:
    """One response built from the engine's events: each step yields the stream events that
    say what changed, and :attr:`response` is the response so far.

    Thinking, text and tool calls each open an output item (reasoning, message,
    function_call) that the next kind of output, or the end, closes."""

    def __init__(self, body: r.ResponsesBody, sampling: SamplingOptions) -> None:
        self.response = r.Response(
            id=_id("resp"),
            created_at=int(time.time()),
            model=body.model,
            status="in_progress",
            output=[],
            instructions=body.instructions,
            tools=body.tools or [],
            tool_choice=body.tool_choice or "auto",
            parallel_tool_calls=body.parallel_tool_calls is not False,
            text=r.TextFormat(format=(body.text.format if body.text else None) or {"type": "text"}),
            reasoning=body.reasoning,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_output_tokens=body.max_output_tokens,
            truncation=body.truncation or "disabled",
            metadata=body.metadata or {},
        )
        self.sequence = 0
        self.open: r.MessageOutput | r.ReasoningOutput | None = None
        self.pieces: list[str] = []

    def _event(self, kind: type[r.StreamEvent], name: str, **fields: Any) -> Named:
        event = kind(type=name, sequence_number=self.sequence, **fields)
        self.sequence += 1
        return name, event

    def _item_event(self, kind: type[r.StreamEvent], name: str, **fields: Any) -> Named:
        """An event about the last output item."""
        return self._event(kind, name, item_id=self.response.output[-1].id, output_index=len(self.response.output) - 1, **fields)

    def _added(self, item: r.OutputItem, announced: r.OutputItem) -> Named:
        self.response.output.append(item)
        return self._event(r.OutputItemEvent, "response.output_item.added", output_index=len(self.response.output) - 1, item=announced)

    def _done(self) -> Named:
        index = len(self.response.output) - 1
        return self._event(r.OutputItemEvent, "response.output_item.done", output_index=index, item=self.response.output[-1])

    def start(self) -> Iterator[Named]:
        for name in ("response.created", "response.in_progress"):
            yield self._event(r.ResponseEvent, name, response=msgspec.structs.replace(self.response, output=[]))

    def add(self, delta: Delta) -> Iterator[Named]:
        if delta.thinking:
            yield from self._reasoning(delta.thinking)
        if delta.text:
            yield from self._message(delta.text)
        if delta.tool_calls:
            yield from self._calls(delta.tool_calls)

    def finish(self, done: Done) -> Iterator[Named]:
        incomplete = done.reason == "length"
        if not self.response.output:  # a reply with nothing in it is an empty message
            yield from self._message("")
        yield from self._close("incomplete" if incomplete else "completed")
        if incomplete:
            self.response.status, self.response.incomplete_details = "incomplete", r.IncompleteDetails(reason="max_output_tokens")
        else:
            self.response.status, self.response.completed_at = "completed", int(time.time())
        tokens = done.prompt_tokens, done.completion_tokens
        self.response.usage = r.Usage(input_tokens=tokens[0], output_tokens=tokens[1], total_tokens=sum(tokens))
        yield self._event(r.ResponseEvent, f"response.{self.response.status}", response=self.response)

    def failed(self, message: str) -> Named:
        """The last event of a stream that failed after it started: the response as far as it got."""
        text = "".join(self.pieces)
        if isinstance(self.open, r.MessageOutput):
            self.open.content[0].text = text
        elif isinstance(self.open, r.ReasoningOutput):
            self.open.summary[0].text = self.open.encrypted_content = text
        self.response.status, self.response.error = "failed", r.ResponseError(code="server_error", message=message)
        return self._event(r.ResponseEvent, "response.failed", response=self.response)

    def _reasoning(self, text: str) -> Iterator[Named]:
        if not isinstance(self.open, r.ReasoningOutput):
            yield from self._close()
            self.open = r.ReasoningOutput(id=_id("rs"), summary=[r.SummaryText(text="")])
            yield self._added(self.open, r.ReasoningOutput(id=self.open.id, summary=[]))
            yield self._item_event(
                r.SummaryPartEvent, "response.reasoning_summary_part.added", summary_index=0, part=r.SummaryText(text="")
            )
        self.pieces.append(text)
        yield self._item_event(r.SummaryTextDeltaEvent, "response.reasoning_summary_text.delta", summary_index=0, delta=text)

    def _message(self, text: str) -> Iterator[Named]:
        if not isinstance(self.open, r.MessageOutput):
            yield from self._close()
            self.open = r.MessageOutput(id=_id("msg"), status="in_progress", content=[r.OutputText(text="")])
            yield self._added(self.open, r.MessageOutput(id=self.open.id, status="in_progress", content=[]))
            yield self._item_event(r.ContentPartEvent, "response.content_part.added", content_index=0, part=r.OutputText(text=""))
        if text:
            self.pieces.append(text)
            yield self._item_event(r.TextDeltaEvent, "response.output_text.delta", content_index=0, delta=text)

    def _calls(self, calls: list[ToolCall]) -> Iterator[Named]:
        yield from self._close()
        for call in calls:
            args = json.dumps(call.function.arguments)
            item = r.FunctionCallOutput(
                id=_id("fc"), status="completed", call_id=call.id or _id("call"), name=call.function.name, arguments=args
            )
            yield self._added(item, msgspec.structs.replace(item, status="in_progress", arguments=""))
            yield self._item_event(r.ArgumentsDeltaEvent, "response.function_call_arguments.delta", delta=args)
            yield self._item_event(r.ArgumentsDoneEvent, "response.function_call_arguments.done", arguments=args)
            yield self._done()

    def _close(self, status: str = "completed") -> Iterator[Named]:
        item, self.open = self.open, None
        text, self.pieces = "".join(self.pieces), []
        if isinstance(item, r.MessageOutput):
            item.status, item.content[0].text = status, text
            yield self._item_event(r.TextDoneEvent, "response.output_text.done", content_index=0, text=text)
            yield self._item_event(r.ContentPartEvent, "response.content_part.done", content_index=0, part=item.content[0])
            yield self._done()
        elif isinstance(item, r.ReasoningOutput):
            item.summary[0].text = item.encrypted_content = text
            yield self._item_event(r.SummaryTextDoneEvent, "response.reasoning_summary_text.done", summary_index=0, text=text)
            yield self._item_event(r.SummaryPartEvent, "response.reasoning_summary_part.done", summary_index=0, part=item.summary[0])
            yield self._done()


async def stream_events(events: EventStream, out: Output) -> AsyncIterator[Named]:
    """The named stream events of a response, from the engine's events."""
    for named in out.start():
        yield named
    async for event in events:
        for named in out.add(event) if isinstance(event, Delta) else out.finish(event):
            yield named


async def response(events: EventStream, out: Output) -> r.Response:
    """A whole response, from the engine's events."""
    async for _ in stream_events(events, out):
        pass
    return out.response
