"""API keys: with ``VLLAMA_API_KEY`` set, every request needs one, but the ``GET``/``HEAD /`` and ``/health``
heartbeats and CORS preflights (``OPTIONS``, which browsers send without credentials).

A key comes as ``Authorization: Bearer <key>`` (OpenAI and Ollama clients) or ``x-api-key:
<key>`` (Anthropic clients). A missing or wrong one gets 401 in the route's error format. A
read-only key (``VLLAMA_API_KEY_READONLY``) may run inference and read model information; any
other route, or a ``keep_alive`` that unloads a model or pins it, gets 403.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from collections.abc import Iterable
from enum import Enum
from typing import Any

import msgspec

from vllama.asgi import ASGIApp, Message, Receive, Scope, Send
from vllama.durations import FOREVER, keep_alive_seconds
from vllama.server.errors import body_for


class Access(Enum):
    """What a request's key lets it do."""

    NONE = "none"
    READ_ONLY = "read-only"
    FULL = "full"


def _digest(key: str | bytes) -> bytes:
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).digest()


@dataclasses.dataclass(frozen=True)
class Keys:
    """The configured keys, kept as digests so that comparing them takes the same time whatever is sent."""

    full: tuple[bytes, ...]
    read_only: tuple[bytes, ...]

    @classmethod
    def of(cls, full: Iterable[str], read_only: Iterable[str] = ()) -> Keys:
        return cls(tuple(_digest(k) for k in full), tuple(_digest(k) for k in read_only))

    def __bool__(self) -> bool:
        return bool(self.full or self.read_only)

    def access(self, presented: Iterable[bytes]) -> Access:
        """The most any of the presented keys allows; every key is compared, each in constant time."""
        best = Access.NONE
        for digest in map(_digest, presented):
            if any([hmac.compare_digest(digest, k) for k in self.full]):
                best = Access.FULL
            elif any([hmac.compare_digest(digest, k) for k in self.read_only]) and best is Access.NONE:
                best = Access.READ_ONLY
        return best


def presented_keys(headers: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """The keys a request sends: ``Authorization: Bearer <key>`` and ``x-api-key: <key>``."""
    keys = []
    for name, value in headers:
        if name == b"authorization":
            scheme, _, key = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and key.strip():
                keys.append(key.strip())
        elif name == b"x-api-key" and value.strip():
            keys.append(value.strip())
    return keys


#: Routes a read-only key may call, as (method, path pattern).
READ_ONLY_ROUTES = tuple(
    (method, re.compile(path))
    for method, path in (
        ("GET", r"/api/version"),
        ("HEAD", r"/api/version"),
        ("GET", r"/api/tags"),
        ("HEAD", r"/api/tags"),
        ("POST", r"/api/show"),
        ("GET", r"/api/ps"),
        ("GET", r"/metrics"),
        ("POST", r"/api/generate"),
        ("POST", r"/api/chat"),
        ("POST", r"/api/embed"),
        ("POST", r"/api/embeddings"),
        ("POST", r"/v1/chat/completions"),
        ("POST", r"/v1/completions"),
        ("POST", r"/v1/embeddings"),
        ("GET", r"/v1/models"),
        ("GET", r"/v1/models/.+"),
        ("GET", r"/openapi(/.*)?"),
        ("POST", r"/v1/messages"),
        ("POST", r"/v1/messages/count_tokens"),
        ("GET", r"/health"),
        ("HEAD", r"/health"),
        ("GET", r"/health/.+"),
        ("POST", r"/v1/responses"),
        ("POST", r"/api/rerank"),
        ("POST", r"/v1/rerank"),
        ("POST", r"/rerank"),
    )
)
#: Routes whose body may carry ``keep_alive``.
KEEP_ALIVE_ROUTES = (
    "/api/generate",
    "/api/chat",
    "/api/embed",
    "/api/embeddings",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/messages",
    "/v1/responses",
    "/api/rerank",
    "/v1/rerank",
    "/rerank",
)
#: The most body a read-only request may send to a ``keep_alive`` route (Litestar's default limit).
MAX_BODY = 10_000_000


class _KeepAlive(msgspec.Struct):
    keep_alive: Any = None


def manages_models(body: bytes) -> bool:
    """Does a request body's ``keep_alive`` unload a model (0) or pin it (negative)?

    A body that does not decode, or a ``keep_alive`` that does not parse, is left to the route to refuse.
    """
    try:
        value = msgspec.json.decode(body, type=_KeepAlive).keep_alive
        return value is not None and keep_alive_seconds(value) in (0, FOREVER)
    except (msgspec.DecodeError, ValueError, TypeError):
        return False


async def _answer(send: Send, path: str, status: int, message: str, code: str) -> None:
    body = msgspec.json.encode(body_for(path, status, message, code=code))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body, and whether it stayed within :data:`MAX_BODY`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_BODY:
            return b"", False
        if not message.get("more_body", False):
            return b"".join(chunks), True


class ApiKeyGuard:
    """ASGI middleware: let a request through only with a configured key (when any is configured)."""

    def __init__(self, app: ASGIApp, keys: Keys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        presented = presented_keys(scope["headers"])
        access = self.keys.access(presented)
        if access is Access.NONE:
            message = "unauthorized: incorrect API key provided" if presented else "unauthorized: an API key is required"
            await _answer(send, path, 401, message, "invalid_api_key")
            return
        if access is Access.READ_ONLY:
            if not any(scope["method"] == m and p.fullmatch(path) for m, p in READ_ONLY_ROUTES):
                await _answer(send, path, 403, "forbidden: this API key is read-only", "insufficient_permissions")
                return
            if path in KEEP_ALIVE_ROUTES:
                body, within = await _read_body(receive)
                if not within:
                    await _answer(send, path, 413, "request body too large", "request_too_large")
                    return
                if manages_models(body):
                    await _answer(
                        send,
                        path,
                        403,
                        "forbidden: a read-only API key cannot unload or pin a model with keep_alive",
                        "insufficient_permissions",
                    )
                    return
                receive = _replay(body, receive)
        await self.app(scope, receive, send)

    @staticmethod
    def _exempt(scope: Scope) -> bool:
        method = scope["method"]
        return method == "OPTIONS" or (scope["path"] in ("/", "/health") and method in ("GET", "HEAD"))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then hands over to the original."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
