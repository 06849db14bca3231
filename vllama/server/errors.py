"""The one place where errors become HTTP answers: Ollama's ``{"error": ...}`` on native
routes, Anthropic's error object under /v1/messages, OpenAI's elsewhere under /v1."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from vllama.errors import VllamaError
from vllama.server import anthropic_wire, openai_wire

log = logging.getLogger("vllama.server")


def body_for(path: str, status: int, message: str, *, param: str | None = None, code: str | None = None) -> Any:
    """The error body in the format of the API that ``path`` belongs to."""
    if path.startswith("/v1/messages"):
        return anthropic_wire.error_body(message, status)
    if path.startswith("/v1/"):
        return openai_wire.error_body(message, status, param=param, code=code)
    return {"error": message}


def _answer(request: Request[Any, Any, Any], status: int, message: str, exc: Exception | None = None) -> Response[Any]:
    # An error about one field (``InvalidParameter``) names it, as OpenAI's do.
    body = body_for(request.url.path, status, message, param=getattr(exc, "param", None), code=getattr(exc, "code", None))
    return Response(body, status_code=status)


def vllama_error(request: Request[Any, Any, Any], exc: VllamaError) -> Response[Any]:
    if exc.status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc.message)
    return _answer(request, exc.status, exc.message, exc)


def validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra[0] if isinstance(exc.extra, list) and exc.extra else {}
    message, key = str(extra.get("message", exc.detail)), extra.get("key")
    if message == "'data'":
        message = "missing request body"
    elif key and key != "data":
        message = f"{message} - at `$.{key}`"
    return _answer(request, 400, message)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    detail = exc.detail or ""
    if exc.status_code == 400 and detail:  # the body did not decode
        detail = f"invalid JSON: {detail}"
    return _answer(request, exc.status_code, detail.lower() if exc.status_code in (404, 405) else detail)


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _answer(request, 500, f"internal error: {type(exc).__name__}: {exc}")


HANDLERS: ExceptionHandlersMap = {
    VllamaError: vllama_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: internal_error,
}
