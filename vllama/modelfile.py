"""Ollama's Modelfile: parse it into a :class:`Modelfile` and write one back."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vllama import options
from vllama.errors import BadRequest

COMMANDS = ("from", "parameter", "template", "system", "adapter", "license", "message")
ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Modelfile:
    """What a Modelfile says. ``parameters`` values are typed; ``stop`` accumulates."""

    from_: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    adapters: list[str] = field(default_factory=list)
    license: list[str] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)


def parse(text: str, *, engine_settings: frozenset[str] | None = frozenset()) -> Modelfile:
    """Parse Modelfile text. Raise BadRequest naming the line for anything invalid.

    ``engine_settings`` are the PARAMETER names backends accept beyond Ollama's options;
    None accepts any name (a client that leaves the check to the server does so)."""
    mf = Modelfile()
    for lineno, command, args in _instructions(text):
        where = f"line {lineno}"
        if command == "from":
            mf.from_ = args
        elif command == "parameter":
            key, _, value = args.partition(" ")
            key, value = key.strip().lower(), _unquote(value.strip())
            if not key or not value:
                raise BadRequest(f"{where}: PARAMETER needs a name and a value")
            _add_parameter(mf.parameters, key, value, engine_settings, where)
        elif command == "template":
            mf.template = args
        elif command == "system":
            mf.system = args
        elif command == "adapter":
            mf.adapters.append(args)
        elif command == "license":
            mf.license.append(args)
        elif command == "message":
            role, _, content = args.partition(" ")
            if role.lower() not in ROLES:
                raise BadRequest(f"{where}: MESSAGE role must be one of {', '.join(ROLES)}")
            mf.messages.append({"role": role.lower(), "content": _unquote(content.strip())})
    if not mf.from_:
        raise BadRequest("no FROM line for the model was specified")
    return mf


def _add_parameter(params: dict[str, Any], key: str, raw: str, engine_settings: frozenset[str] | None, where: str) -> None:
    kind = options.value_type(key)
    if kind is None:
        if engine_settings is not None and not options.is_option(key) and key not in engine_settings:
            raise BadRequest(f'{where}: unknown parameter "{key}"')
        params[key] = _scalar(raw)
        return
    if kind is list:
        params.setdefault(key, []).append(raw)
        return
    try:
        parsers: dict[type, Callable[[str], Any]] = {int: int, float: float, bool: _bool}
        value = parsers[kind](raw)
    except ValueError:
        raise BadRequest(f'{where}: parameter "{key}" must be of type {kind.__name__}') from None
    try:
        options.check_range(key, value)
    except BadRequest as e:
        raise BadRequest(f"{where}: {e.message}") from None
    params[key] = value


def _bool(raw: str) -> bool:
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ValueError(raw)


def _scalar(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _unquote(value: str) -> str:
    if len(value) >= 6 and value.startswith('"""') and value.endswith('"""'):
        return value[3:-3]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    return value


def _instructions(text: str):  # -> Iterator[tuple[int, str, str]]
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        lineno = i + 1
        i += 1
        if not line or line.startswith("#"):
            continue
        command, _, rest = line.partition(" ")
        command = command.lower()
        if command not in COMMANDS:
            raise BadRequest(f'line {lineno}: unknown command "{command.upper()}"')
        rest = rest.strip()
        if '"""' in rest:
            head, _, tail = rest.partition('"""')
            if '"""' in tail:
                body, _, after = tail.partition('"""')
            else:
                parts = [tail]
                while i < len(lines) and '"""' not in lines[i]:
                    parts.append(lines[i])
                    i += 1
                if i >= len(lines):
                    raise BadRequest(f'line {lineno}: unterminated """ string')
                last, _, after = lines[i].partition('"""')
                parts.append(last)
                i += 1
                body = "\n".join(parts)
            if after.strip():
                raise BadRequest(f'line {lineno}: unexpected text after closing """')
            rest = head + body if command in ("parameter", "message") else body
            if head.strip() == "" and command not in ("parameter", "message"):
                rest = body
        elif command not in ("parameter", "message"):
            rest = _unquote(rest)
        if not rest and command in ("from", "parameter", "message", "adapter"):
            raise BadRequest(f"line {lineno}: {command.upper()} needs an argument")
        yield lineno, command, rest


def render(mf: Modelfile) -> str:
    """Write a Modelfile back, as ``vllama show --modelfile`` and /api/show print it."""
    out = [f"FROM {mf.from_}"]
    if mf.template is not None:
        out.append(f"TEMPLATE {_quote(mf.template, triple=True)}")
    if mf.system is not None:
        out.append(f"SYSTEM {_quote(mf.system, triple=True)}")
    for adapter in mf.adapters:
        out.append(f"ADAPTER {adapter}")
    for key, value in mf.parameters.items():
        for item in value if isinstance(value, list) else [value]:
            out.append(f"PARAMETER {key} {_param_text(item)}")
    for msg in mf.messages:
        out.append(f"MESSAGE {msg['role']} {_quote(msg['content'])}")
    for text in mf.license:
        out.append(f"LICENSE {_quote(text, triple=True)}")
    return "\n".join(out) + "\n"


def _param_text(value: Any) -> str:
    if isinstance(value, str):
        return _quote(value) if (not value or any(c.isspace() for c in value) or '"' in value) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if not isinstance(value, (int, float)) else str(value)


def _quote(text: str, *, triple: bool = False) -> str:
    """Triple quotes where they read well and parse back exactly, else a JSON string."""
    lines = text.split("\n")
    readable = (
        triple
        and '"""' not in text
        and not text.endswith('"')
        and all(line == line.rstrip() and line.isprintable() for line in lines)
        and text == text.lstrip()
    )
    return f'"""{text}"""' if readable else json.dumps(text, ensure_ascii=False)
