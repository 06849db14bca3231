"""One timed request to a server, through Ollama's ``/api/chat`` or OpenAI's ``/v1/chat/completions``.

Tokens are counted from the server's own usage fields (Ollama's ``eval_count``, OpenAI's
``usage.completion_tokens``); a stream without them counts its content chunks instead, and
the sample says so. A chunk of reasoning or of a tool call is output as much as one of text.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec

from vllama.bench.workload import Chat, Target, Workload


class Sample(msgspec.Struct, kw_only=True):
    """One request's outcome; times in seconds."""

    error: str = ""
    latency: float = 0.0
    #: Time to the first streamed output (None without streaming).
    ttft: float | None = None
    #: Gaps between streamed output chunks.
    gaps: list[float] = []
    tokens: int = 0
    prompt_tokens: int = 0
    #: The server reported no usage: ``tokens`` counts the streamed chunks.
    estimated: bool = False
    #: The reply's text (without reasoning), for a conversation's next turn.
    reply: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


class _Clock:
    """Times one request's stream."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.last = 0.0
        self.gaps: list[float] = []

    def output(self) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        else:
            self.gaps.append(now - self.last)
        self.last = now

    def sample(self, tokens: int | None, prompt_tokens: int | None, reply: list[str]) -> Sample:
        chunks = 0 if self.first is None else len(self.gaps) + 1
        return Sample(
            latency=time.perf_counter() - self.start,
            ttft=None if self.first is None else self.first - self.start,
            gaps=self.gaps,
            tokens=chunks if tokens is None else tokens,
            prompt_tokens=prompt_tokens or 0,
            estimated=tokens is None and chunks > 0,
            reply="".join(reply),
        )


class RequestFailed(Exception):
    """The server answered with an error."""


def error_text(body: bytes, status: int | None = None) -> str:
    """The message in an error body: Ollama's ``{"error": str}`` or OpenAI's ``{"error": {"message": str}}``."""
    try:
        error = msgspec.json.decode(body).get("error")
    except (msgspec.DecodeError, AttributeError):
        error = None
    if isinstance(error, dict):
        error = error.get("message")
    message = str(error) if error else body.decode(errors="replace").strip()[:200]
    return f"HTTP {status}: {message}" if status else message


# -- Ollama ------------------------------------------------------------------------------


class _OllamaMessage(msgspec.Struct):
    content: str = ""
    thinking: str = ""
    tool_calls: list[Any] = []


class _OllamaChunk(msgspec.Struct):
    message: _OllamaMessage | None = None
    done: bool = False
    eval_count: int | None = None
    prompt_eval_count: int | None = None
    error: str | None = None


_ollama_chunk = msgspec.json.Decoder(_OllamaChunk)


def _messages(chat: Chat) -> dict[str, Any]:
    """The messages, and the tools where there are any (some servers refuse an empty list)."""
    fields: dict[str, Any] = {"messages": msgspec.to_builtins(chat.messages)}
    if chat.tools:
        fields["tools"] = list(chat.tools)
    return fields


def ollama_body(target: Target, workload: Workload, chat: Chat) -> dict[str, Any]:
    """Ollama's native API rejects options it does not know, so no ``ignore_eos`` here."""
    return {
        "model": target.model,
        **_messages(chat),
        "stream": workload.stream,
        "options": {"temperature": workload.temperature, "num_predict": workload.num_predict},
    }


async def ollama_request(client: httpx.AsyncClient, target: Target, workload: Workload, chat: Chat) -> Sample:
    clock = _Clock()
    reply: list[str] = []
    async with client.stream("POST", target.url.rstrip("/") + "/api/chat", json=ollama_body(target, workload, chat)) as response:
        if response.status_code >= 400:
            raise RequestFailed(error_text(await response.aread(), response.status_code))
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            chunk = _ollama_chunk.decode(line)
            if chunk.error:
                raise RequestFailed(chunk.error)
            message = chunk.message
            if message is not None:
                reply.append(message.content)
                if (message.content or message.thinking or message.tool_calls) and workload.stream:
                    clock.output()
            if chunk.done:
                return clock.sample(chunk.eval_count, chunk.prompt_eval_count, reply)
    raise RequestFailed("the stream ended without a final chunk")


# -- OpenAI ------------------------------------------------------------------------------


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[Any] | None = None

    def output(self) -> bool:
        return bool(self.content or self.reasoning_content or self.reasoning or self.tool_calls)


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    message: _Delta | None = None


class _Usage(msgspec.Struct):
    completion_tokens: int | None = None
    prompt_tokens: int | None = None


class _OpenAIChunk(msgspec.Struct):
    choices: list[_Choice] = []
    usage: _Usage | None = None
    error: Any = None


_openai_chunk = msgspec.json.Decoder(_OpenAIChunk)


def openai_body(target: Target, workload: Workload, chat: Chat) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": target.model,
        **_messages(chat),
        "stream": workload.stream,
        "temperature": workload.temperature,
        "max_tokens": workload.num_predict,
    }
    if workload.stream:
        body["stream_options"] = {"include_usage": True}
    if workload.ignore_eos:
        body["ignore_eos"] = True
    return body


def _check(chunk: _OpenAIChunk) -> None:
    if chunk.error:
        message = chunk.error.get("message") if isinstance(chunk.error, dict) else chunk.error
        raise RequestFailed(str(message))


async def openai_request(client: httpx.AsyncClient, target: Target, workload: Workload, chat: Chat) -> Sample:
    clock = _Clock()
    url = target.url.rstrip("/") + "/v1/chat/completions"
    usage: _Usage | None = None
    reply: list[str] = []
    async with client.stream("POST", url, json=openai_body(target, workload, chat)) as response:
        if response.status_code >= 400:
            raise RequestFailed(error_text(await response.aread(), response.status_code))
        if not workload.stream:
            chunk = _openai_chunk.decode(await response.aread())
            _check(chunk)
            usage = chunk.usage
            reply += [c.message.content or "" for c in chunk.choices if c.message]
        else:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = _openai_chunk.decode(data)
                _check(chunk)
                usage = chunk.usage or usage
                deltas = [c.delta for c in chunk.choices if c.delta]
                reply += [d.content or "" for d in deltas]
                if any(d.output() for d in deltas):
                    clock.output()
    if usage is None and not workload.stream:
        raise RequestFailed("the response has no usage")
    return clock.sample(usage.completion_tokens if usage else None, usage.prompt_tokens if usage else None, reply)


Driver = Callable[[httpx.AsyncClient, Target, Workload, Chat], Awaitable[Sample]]
DRIVERS: dict[str, Driver] = {"ollama": ollama_request, "openai": openai_request}


async def send(client: httpx.AsyncClient, target: Target, workload: Workload, request: Chat | str) -> Sample:
    """Send one request (a prompt's text is one user message); a failure becomes a sample with its error."""
    start = time.perf_counter()
    chat = Chat.of(request) if isinstance(request, str) else request
    try:
        return await DRIVERS[target.api](client, target, workload, chat)
    except RequestFailed as e:
        error = str(e)
    except (httpx.HTTPError, msgspec.DecodeError) as e:
        error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return Sample(error=error or "request failed", latency=time.perf_counter() - start)
