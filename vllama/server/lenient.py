"""Ollama's leniency: fields a request body does not define are ignored, with one warning.

The body is already decoded to JSON values (Litestar caches them for the route's ``data``), so
the check walks those keys against the request struct's encoded field names, nested structs
(messages, tool calls) included.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import msgspec
from litestar import Request

from vllama.server import ollama_wire as w
from vllama.server import openai_wire as o
from vllama.server import responses_wire as r

log = logging.getLogger("vllama.server")

#: The request bodies checked: every native one, and OpenAI's.
_BODIES = (w.Request, o.ChatCompletionBody, o.CompletionBody, o.EmbeddingsBody, r.ResponsesBody)

#: A field's nested struct and whether the field holds a list of them.
_Nested = tuple[type[msgspec.Struct], bool] | None


def _nested(t: msgspec.inspect.Type) -> _Nested:
    if isinstance(t, msgspec.inspect.UnionType):
        return next((n for n in map(_nested, t.types) if n is not None), None)
    if isinstance(t, msgspec.inspect.StructType):
        return t.cls, False
    if isinstance(t, msgspec.inspect.ListType) and isinstance(t.item_type, msgspec.inspect.StructType):
        return t.item_type.cls, True
    return None


@functools.cache
def _fields(struct: type[msgspec.Struct]) -> dict[str, _Nested]:
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    return {f.encode_name: _nested(f.type) for f in info.fields}


def unknown_fields(value: Any, struct: type[msgspec.Struct], prefix: str = "") -> list[str]:
    """The keys of the JSON object ``value`` that ``struct`` does not define, as paths
    (``foo``, ``messages[].colour``), each once."""
    if not isinstance(value, dict):
        return []
    fields, out = _fields(struct), []
    for key, item in value.items():
        if key not in fields:
            out.append(prefix + key)
        elif (nested := fields[key]) is not None:
            cls, many = nested
            items = item if many and isinstance(item, list) else [] if many else [item]
            for element in items:
                out.extend(unknown_fields(element, cls, f"{prefix}{key}{'[]' if many else ''}."))
    return list(dict.fromkeys(out))


async def warn_unknown_fields(request: Request[Any, Any, Any]) -> None:
    """A ``before_request`` hook: log the fields of a request body that are ignored."""
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    struct = data.annotation if data is not None else None
    if not (isinstance(struct, type) and issubclass(struct, _BODIES)):
        return
    try:
        body = await request.json()
    except Exception:  # the route answers a bad body with its 400
        return
    if unknown := unknown_fields(body, struct):
        names = ", ".join(f'"{name}"' for name in unknown)
        log.warning("ignoring unknown field%s %s in %s", "s" if len(unknown) > 1 else "", names, request.url.path)
