"""Ollama's browser guards: a request whose Origin is not allowed, or (on a server bound to
loopback) whose Host is not a local name, gets 403 with an empty body.

Allowed origins: loopback origins, app/file/tauri/vscode schemes, and ``VLLAMA_ORIGINS``
(``OLLAMA_ORIGINS``) patterns, where ``*`` is a wildcard. Allowed hosts on a loopback
server: localhost, ``*.localhost``, ``*.local``, ``*.internal``, this machine's name, and
loopback, private or unspecified addresses. This stops DNS rebinding attacks.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

from vllama.asgi import ASGIApp, Message, Receive, Scope, Send

DEFAULT_ORIGINS = tuple(
    f"{scheme}://{host}{port}"
    for scheme in ("http", "https")
    for host in ("localhost", "127.0.0.1", "0.0.0.0", "[::1]")
    for port in ("", ":*")
) + ("app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*")

ALLOW_HEADERS = "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, x-stainless-*, x-api-key"
ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"


def is_local_host(host: str) -> bool:
    """Is a Host header's name one a browser on this machine may legitimately use?"""
    if host.startswith("["):
        name = host[1 : host.find("]")]
    else:
        name = host.split(":")[0] if host.count(":") == 1 else host
    name = name.rstrip(".").lower()
    if name in ("localhost", socket.gethostname().lower()) or name.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified or address.is_link_local


def origin_pattern(pattern: str) -> re.Pattern[str]:
    """A compiled origin pattern: ``*`` matches any run of characters, everything else itself."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


async def _forbidden(send: Send) -> None:
    await send({"type": "http.response.start", "status": 403, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


class OriginGuard:
    """ASGI middleware: refuse disallowed origins and hosts, answer preflights, add CORS headers."""

    def __init__(self, app: ASGIApp, origins: Iterable[str] = (), check_host: bool = False) -> None:
        self.app = app
        self.patterns = [origin_pattern(p) for p in DEFAULT_ORIGINS + tuple(origins)]
        self.check_host = check_host

    def allowed(self, origin: str) -> bool:
        """Does ``origin`` match a default or configured pattern (case-sensitively, as a whole)?"""
        return any(p.fullmatch(origin) for p in self.patterns)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.check_host and b"host" in headers and not is_local_host(headers[b"host"].decode("latin-1")):
            await _forbidden(send)
            return
        origin = headers[b"origin"].decode("latin-1") if b"origin" in headers else None
        if origin is None:
            await self.app(scope, receive, send)
            return
        if not self.allowed(origin):
            await _forbidden(send)
            return
        cors = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
        if scope["method"] == "OPTIONS":
            preflight = cors + [
                (b"access-control-allow-methods", ALLOW_METHODS.encode()),
                (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                (b"access-control-max-age", b"43200"),
                (b"content-length", b"0"),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": preflight})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + cors}
            await send(message)

        await self.app(scope, receive, send_with_cors)
