"""Grammars that make tool calls parse and match their tools' JSON schemas.

With ``tool_choice`` "required" the grammar holds from the first token. Otherwise it is lazy:
llama.cpp leaves sampling free until the model opens a call (its format's marker, or a reply
that starts with ``{``) and constrains the call from there, so prose stays free and a call
always parses, even from a small model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from vllama.errors import BadRequest
from vllama.tool_calls import MARKERS, ToolFormat
from vllama.types import Tool

#: A reply that opens with a JSON object: a bare call (the first capture group is where the
#: grammar starts).
_BARE_TRIGGER = r"^\s*(\{)[\s\S]*$"


@dataclass(frozen=True)
class ToolGrammar:
    """A GBNF grammar for calls and, for a lazy one, the patterns that switch it on."""

    gbnf: str
    triggers: tuple[str, ...]


def tool_grammar(tools: list[Tool], fmt: ToolFormat, *, parallel: bool, lazy: bool) -> ToolGrammar:
    """The grammar for calls of ``tools`` written in ``fmt``."""
    markers = MARKERS[fmt]
    key = markers.arguments_key if markers else "arguments"
    schema = {"anyOf": [_call_schema(t, key) for t in tools]}
    try:
        rules = json_schema_to_gbnf(json.dumps(schema))
    except Exception as e:  # the converter raises bare Exceptions and KeyErrors
        raise BadRequest(f"invalid JSON schema in tools: {e}") from None
    rules = re.sub(r"^root ::=", "tc-call ::=", rules, count=1, flags=re.M)
    more = " (tc-ws tc-call)*" if parallel else ""
    alternatives = [f"tc-call{more}"]
    triggers = [_BARE_TRIGGER]
    if markers is not None:
        start = json.dumps(markers.start)
        if markers.end:
            tagged = f"{start} tc-ws tc-call tc-ws {json.dumps(markers.end)}"
            alternatives.insert(0, f"{tagged}" + (f" (tc-ws {tagged})*" if parallel else ""))
        elif fmt == "mistral":
            alternatives.insert(0, f'{start} "[" tc-call' + (' ("," tc-ws tc-call)*' if parallel else "") + ' "]"')
        else:
            alternatives.insert(0, f"{start} tc-call{more}")
        triggers.insert(0, re.escape(markers.start))
    root = "root ::= " + (" | ".join(f"( {a} )" for a in alternatives))
    if not lazy:
        root = "root ::= tc-ws ( " + " | ".join(f"( {a} )" for a in alternatives) + " )"
    gbnf = "\n".join([root, "tc-ws ::= [ \\t\\n]*", rules])
    return ToolGrammar(gbnf, tuple(triggers) if lazy else ())


def _call_schema(tool: Tool, key: str) -> dict[str, Any]:
    params = tool.function.parameters or {"type": "object"}
    return {
        "type": "object",
        "properties": {"name": {"const": tool.function.name}, key: params},
        "required": ["name", key],
        "additionalProperties": False,
    }
