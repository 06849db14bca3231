"""OpenAI's wire types to the core's and back, with Ollama's mapping of fields and defaults."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any, Literal

from vllama.errors import BadRequest
from vllama.server import openai_wire as o
from vllama.server import serving
from vllama.types import (
    ChatRequest,
    Delta,
    Done,
    EventStream,
    Format,
    GenerateRequest,
    Message,
    SamplingOptions,
    Think,
    Tool,
    ToolCall,
    ToolCallFunction,
)

_EFFORT: dict[str, Think] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "max",
    "xhigh": "max",
    "ultra": "max",
}


def options_of(body: o.ChatCompletionBody | o.CompletionBody, max_tokens: int | None) -> dict[str, Any]:
    """OpenAI fields as Ollama options, over the body's extra ``options`` and ``num_ctx``;
    temperature and top_p default to 1.0 as in Ollama, where neither sets them."""
    fields: dict[str, Any] = {}
    for key in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"):
        if (value := getattr(body, key)) is not None:
            fields[key] = value
    if max_tokens is not None:
        fields["num_predict"] = max_tokens
    if body.stop is not None:
        fields["stop"] = [body.stop] if isinstance(body.stop, str) else body.stop
    out = serving.with_extras(fields, body.options, body.num_ctx)
    return {"temperature": 1.0, "top_p": 1.0, **out}


def messages_of(messages: list[o.ChatMessage]) -> list[Message]:
    out = []
    call_names: dict[str, str] = {}  # tool_call_id -> function name, for tool results
    for m in messages:
        text, images = [], []
        if isinstance(m.content, str):
            text.append(m.content)
        for part in m.content if isinstance(m.content, list) else []:
            if part.get("type") == "text":
                text.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                url = part.get("image_url")
                url = url.get("url", "") if isinstance(url, dict) else str(url or "")
                if not url.startswith("data:"):
                    raise BadRequest("image URLs must be base64 data URLs")
                images.extend(serving.decode_images([url]))
            else:
                raise BadRequest(f"unsupported content part type {part.get('type')!r}")
        calls = []
        for i, call in enumerate(m.tool_calls or []):
            fn = call.get("function") or {}
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except ValueError:
                raise BadRequest("tool call arguments must be a JSON object string") from None
            if not isinstance(args, dict):
                raise BadRequest("tool call arguments must be a JSON object string")
            calls.append(ToolCall(id=call.get("id", ""), function=ToolCallFunction(name=fn.get("name", ""), arguments=args, index=i)))
            call_names[call.get("id", "")] = fn.get("name", "")
        role = "system" if m.role == "developer" else m.role
        if role not in ("system", "user", "assistant", "tool"):
            raise BadRequest(f"invalid role {m.role!r}")
        out.append(
            Message(
                role=role,
                content="".join(text),
                images=images,
                tool_calls=calls,
                thinking=m.reasoning or m.reasoning_content or "",
                tool_call_id=m.tool_call_id or "",
                tool_name=m.name or call_names.get(m.tool_call_id or "", "") if role == "tool" else "",
            )
        )
    return out


def tool_choice_of(choice: str | dict[str, Any] | None, tools: list[Tool]) -> tuple[list[Tool], Literal["auto", "required"]]:
    """OpenAI's ``tool_choice``: "none" offers no tools, "required" or a named function makes
    the reply a call (of that function only)."""
    if choice is None or choice == "auto":
        return tools, "auto"
    if choice == "none":
        return [], "auto"
    if choice == "required":
        if not tools:
            raise BadRequest('tool_choice "required" needs tools')
        return tools, "required"
    name = ((choice.get("function") or {}).get("name") if isinstance(choice, dict) else None) or ""
    if not isinstance(name, str) or not name:
        raise BadRequest('invalid tool_choice: use "none", "auto", "required" or {"type": "function", "function": {"name": ...}}')
    named = [t for t in tools if t.function.name == name]
    if not named:
        raise BadRequest(f"tool_choice names {name!r}, which is not in tools")
    return named, "required"


def format_of(response_format: dict[str, Any] | None) -> Format:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema must be an object")
        return schema
    if kind == "text":
        return None
    raise BadRequest(f"invalid response_format type {kind!r}")


def think_of(body: o.ChatCompletionBody) -> Think:
    return think_of_effort(body.reasoning_effort or (body.reasoning or {}).get("effort"))


def think_of_effort(effort: str | None, param: str = "reasoning_effort") -> Think:
    """OpenAI's reasoning effort as Ollama's ``think``, mapped as Ollama maps it."""
    if effort is None:
        return None
    if effort not in _EFFORT:
        raise BadRequest(f"invalid {param} {effort!r}: use none, minimal, low, medium, high or max")
    return _EFFORT[effort]


def wire_tool_calls(calls: list[ToolCall], start: int = 0) -> list[o.ToolCall] | None:
    if not calls:
        return None
    return [
        o.ToolCall(
            id=c.id or f"call_{secrets.token_hex(4)}",
            index=start + i,
            function=o.FunctionCall(name=c.function.name, arguments=json.dumps(c.function.arguments)),
        )
        for i, c in enumerate(calls)
    ]


def wire_logprobs(delta: Delta) -> o.ChoiceLogprobs | None:
    if not delta.logprobs:
        return None
    return o.ChoiceLogprobs(
        content=[
            o.LogprobContent(
                token=lp.token,
                logprob=lp.logprob,
                bytes=lp.bytes or None,
                top_logprobs=[o.TopLogprob(t.token, t.logprob, t.bytes or None) for t in lp.top_logprobs],
            )
            for lp in delta.logprobs
        ]
    )


def wire_usage(done: Done) -> o.Usage:
    return o.Usage(done.prompt_tokens, done.completion_tokens, done.prompt_tokens + done.completion_tokens)


async def chat_chunks(events: EventStream, rid: str, created: int, model: str, include_usage: bool) -> AsyncIterator[o.ChatCompletionChunk]:
    def chunk(delta: o.ResponseMessage, finish: str | None = None, logprobs: o.ChoiceLogprobs | None = None) -> o.ChatCompletionChunk:
        return o.ChatCompletionChunk(
            id=rid, created=created, model=model, choices=[o.ChunkChoice(delta=delta, finish_reason=finish, logprobs=logprobs)]
        )

    yield chunk(o.ResponseMessage(role="assistant", content=""))
    n_calls = 0
    async for event in events:
        if isinstance(event, Delta):
            calls = wire_tool_calls(event.tool_calls, n_calls)
            n_calls += len(event.tool_calls)
            yield chunk(
                o.ResponseMessage(content=event.text or None, reasoning=event.thinking or None, tool_calls=calls),
                logprobs=wire_logprobs(event),
            )
        else:
            yield chunk(o.ResponseMessage(), "tool_calls" if n_calls else event.reason)
            if include_usage:
                yield o.ChatCompletionChunk(id=rid, created=created, model=model, choices=[], usage=wire_usage(event))


async def completion_chunks(events: EventStream, rid: str, created: int, model: str, include_usage: bool) -> AsyncIterator[o.Completion]:
    async for event in events:
        if isinstance(event, Delta):
            yield o.Completion(id=rid, created=created, model=model, choices=[o.CompletionChoice(text=event.text)])
        else:
            yield o.Completion(id=rid, created=created, model=model, choices=[o.CompletionChoice(text="", finish_reason=event.reason)])
            if include_usage:
                yield o.Completion(id=rid, created=created, model=model, choices=[], usage=wire_usage(event))


def chat_request(body: o.ChatCompletionBody, sampling: SamplingOptions) -> ChatRequest:
    """The core's request for a chat completion; ``sampling`` holds the merged options."""
    sampling.ignore_eos = body.ignore_eos
    tools, choice = tool_choice_of(body.tool_choice, serving.parse_tools(body.tools))
    top = body.top_logprobs or 0
    serving.check_top_logprobs(top)
    return ChatRequest(
        messages=messages_of(body.messages),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=body.parallel_tool_calls is not False,
        options=sampling,
        format=format_of(body.response_format),
        think=think_of(body),
        logprobs=bool(body.logprobs),
        top_logprobs=top,
    )


def completion_request(body: o.CompletionBody, sampling: SamplingOptions, *, system: str) -> GenerateRequest:
    """The core's request for a (legacy) completion: one prompt, with the model's system prompt."""
    prompt = body.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise BadRequest("prompt must be a string (one prompt per request)")
        prompt = prompt[0]
    sampling.ignore_eos = body.ignore_eos
    return GenerateRequest(prompt=prompt, system=system, suffix=body.suffix or "", options=sampling)


async def chat_completion(events: EventStream, rid: str, created: int, model: str) -> o.ChatCompletion:
    """A whole chat completion, from the engine's events."""
    text, thinking, calls, logprobs = [], [], [], []
    done = Done()
    async for event in events:
        if isinstance(event, Delta):
            text.append(event.text)
            thinking.append(event.thinking)
            calls.extend(event.tool_calls)
            logprobs.extend(event.logprobs)
        else:
            done = event
    message = o.ResponseMessage(
        role="assistant", content="".join(text), reasoning="".join(thinking) or None, tool_calls=wire_tool_calls(calls)
    )
    choice = o.ChatChoice(
        message=message, finish_reason="tool_calls" if calls else done.reason, logprobs=wire_logprobs(Delta(logprobs=logprobs))
    )
    return o.ChatCompletion(id=rid, created=created, model=model, usage=wire_usage(done), choices=[choice])


async def completion(events: EventStream, rid: str, created: int, model: str) -> o.Completion:
    """A whole completion, from the engine's events."""
    text, done = [], Done()
    async for event in events:
        if isinstance(event, Delta):
            text.append(event.text)
        else:
            done = event
    choice = o.CompletionChoice(text="".join(text), finish_reason=done.reason)
    return o.Completion(id=rid, created=created, model=model, usage=wire_usage(done), choices=[choice])
