"""Streaming bodies: NDJSON for Ollama's routes, SSE for OpenAI's and Anthropic's; an error mid-stream
becomes one last error line (the status is already sent)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from litestar.response import Stream

from vllama.errors import VllamaError

log = logging.getLogger("vllama.server")
_encoder = msgspec.json.Encoder()


def error_message(exc: BaseException) -> str:
    if isinstance(exc, VllamaError):
        return exc.message
    log.exception("unexpected error mid-stream", exc_info=exc)
    return f"internal error: {type(exc).__name__}"


async def ndjson_lines(items: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    buffer = bytearray()
    try:
        async for item in items:
            buffer.clear()
            _encoder.encode_into(item, buffer)
            buffer.extend(b"\n")
            yield bytes(buffer)
    except Exception as exc:
        yield _encoder.encode({"error": error_message(exc)}) + b"\n"


def ndjson(items: AsyncIterator[Any]) -> Stream:
    return Stream(ndjson_lines(items), media_type="application/x-ndjson")


async def sse_lines(items: AsyncIterator[Any], error: Callable[[str], Any]) -> AsyncIterator[bytes]:
    try:
        async for item in items:
            yield b"data: " + _encoder.encode(item) + b"\n\n"
    except Exception as exc:
        yield b"data: " + _encoder.encode(error(error_message(exc))) + b"\n\n"
    yield b"data: [DONE]\n\n"


def sse(items: AsyncIterator[Any], error: Callable[[str], Any]) -> Stream:
    return Stream(sse_lines(items, error), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def sse_event_lines(items: AsyncIterator[tuple[str, Any]], error: Callable[[str], tuple[str, Any]]) -> AsyncIterator[bytes]:
    """Named SSE events (``event: NAME`` then its ``data:``), as Anthropic's and OpenAI's
    Responses streams send them; no ``[DONE]``."""
    try:
        async for name, item in items:
            yield b"event: " + name.encode() + b"\ndata: " + _encoder.encode(item) + b"\n\n"
    except Exception as exc:
        name, item = error(error_message(exc))
        yield b"event: " + name.encode() + b"\ndata: " + _encoder.encode(item) + b"\n\n"


def sse_events(items: AsyncIterator[tuple[str, Any]], error: Callable[[str], tuple[str, Any]]) -> Stream:
    """SSE with an ``event:`` line per item, from (event name, body) pairs; ``error`` makes the
    last pair from the message of an error mid-stream. No ``[DONE]`` line."""
    return Stream(sse_event_lines(items, error), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
