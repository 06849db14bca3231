"""One log format for the server, its engines and uvicorn, with the request id on each line.

Text lines read ``2026-12-04T12:00:00.123Z INFO vllama.scheduler: message request_id=...``;
JSON lines (for log collectors) carry ``time``, ``level``, ``logger``, ``message`` and, when
known, ``request_id`` and ``model``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import re
import time
import uuid
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

from vllama.asgi import ASGIApp, Receive, Scope, Send

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
#: Record attributes the JSON lines carry when a record has them (the access log sets the HTTP ones).
FIELDS = ("request_id", "model", "method", "path", "status", "duration_ms")

access_log = logging.getLogger("vllama.access")


@dataclasses.dataclass
class RequestInfo:
    """The request being served: its id, and the model it runs on once that is known."""

    id: str
    model: str | None = None


current: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar("vllama_request", default=None)

#: How the process was set up, for engine worker processes to log the same way.
_setup: dict[str, Any] = {"level": logging.INFO, "json_lines": False}
_handler: logging.Handler | None = None


def note_model(name: str) -> None:
    """Record the model the current request runs on, for its log lines."""
    if (info := current.get()) is not None:
        info.model = name


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class TextFormatter(logging.Formatter):
    """``TIME LEVEL logger: message``, then ``model=`` and ``request_id=`` when known."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        for key in ("model", "request_id"):
            if (value := getattr(record, key, None)) is not None:
                line += f" {key}={value}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": _time(record), "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        entry.update({key: value for key in FIELDS if (value := getattr(record, key, None)) is not None})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ContextFilter(logging.Filter):
    """Stamp each record with the current request's id and model (or a fixed model, in a worker)."""

    def __init__(self, model: str | None = None) -> None:
        super().__init__()
        self.model = model

    def filter(self, record: logging.LogRecord) -> bool:
        info = current.get()
        if not hasattr(record, "request_id"):
            record.request_id = info.id if info else None
        if getattr(record, "model", None) is None:
            record.model = info.model if info and info.model else self.model
        return True


def configure(
    *, level: int | str = logging.INFO, json_lines: bool = False, model: str | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Send every record, vllama's and uvicorn's, to ``stream`` (stderr) in one format, through
    the root logger; ``model`` tags a worker's lines. Calling it again replaces the handler."""
    global _handler
    _setup.update(level=level, json_lines=json_lines)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(ContextFilter(model))
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    _handler = handler
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    return handler


def setup() -> dict[str, Any]:
    """The arguments :func:`configure` was last called with (but ``model``)."""
    return dict(_setup)


_VALID_ID = re.compile(r"[\w.:@/+=-]{1,128}")


class RequestLog:
    """ASGI middleware: give each HTTP request an id (its ``X-Request-ID`` or a new one), send it
    back in ``X-Request-ID``, and log one access line per request unless ``access_log`` is off."""

    def __init__(self, app: ASGIApp, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        info = RequestInfo(given if _VALID_ID.fullmatch(given) else uuid.uuid4().hex)
        token = current.set(info)
        status, started = 500, time.perf_counter()

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", info.id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log:
                ms = round((time.perf_counter() - started) * 1000, 1)
                fields = {"method": scope["method"], "path": scope["path"], "status": status, "duration_ms": ms}
                access_log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, ms, extra=fields)
            current.reset(token)
