"""ASGI types for vllama's middleware, loose as the ASGI spec is: a scope is a read-only
mapping and messages are dicts, so one middleware serves and wraps any ASGI app (Litestar's,
whose own types are narrower per scope kind, and uvicorn's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Scope = Mapping[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
