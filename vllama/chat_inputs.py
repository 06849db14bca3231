"""What a chat template is given, the same for every engine: messages and tools as Hugging
Face chat templates expect them, and the test that tells a Jinja chat template from an Ollama
Go template."""

from __future__ import annotations

import re
from typing import Any

from vllama.types import GenerateRequest, Message, Think, Tool

#: Ollama's Go templates (``{{ .Prompt }}``, ``{{ if .System }}``) are not Jinja.
_GO_TEMPLATE = re.compile(r"\{\{-?\s*(\.|if\s|range\s|end\b|else\b|with\s|template\s)")


def is_jinja(template: str) -> bool:
    """Whether ``template`` is a Jinja chat template rather than an Ollama Go template."""
    return bool(template.strip()) and not _GO_TEMPLATE.search(template)


def template_message(m: Message) -> dict[str, Any]:
    """One message as chat templates read it: assistant ``tool_calls`` with their ids and
    arguments as an object, a tool result's ``name`` (also as ``tool_name``) and
    ``tool_call_id``, earlier thinking as ``reasoning_content``."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.thinking:
        out["reasoning_content"] = m.thinking
    if m.tool_calls:
        out["tool_calls"] = [
            {"type": "function", **({"id": c.id} if c.id else {}), "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_name:
        out["name"] = out["tool_name"] = m.tool_name
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def template_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation as chat templates read it (:func:`template_message` each)."""
    return [template_message(m) for m in messages]


def template_tools(tools: list[Tool]) -> list[dict[str, Any]] | None:
    """The tools offered, as OpenAI-style function specs; None when there are none, so that
    templates that test ``if tools`` render no tool section."""
    if not tools:
        return None
    return [
        {
            "type": t.type,
            "function": {
                "name": t.function.name,
                "description": t.function.description,
                "parameters": t.function.parameters or {"type": "object", "properties": {}},
            },
        }
        for t in tools
    ]


def template_kwargs(think: Think) -> dict[str, Any]:
    """The thinking switches chat templates read, for a request's ``think``: Qwen3's
    ``enable_thinking``, Granite's ``thinking`` and, for a level, gpt-oss's
    ``reasoning_effort`` ("max" as "high", its highest). Nothing when ``think`` is unset, so
    each template keeps its own default."""
    if think is None:
        return {}
    out: dict[str, Any] = {"enable_thinking": bool(think), "thinking": bool(think)}
    if isinstance(think, str):
        out["reasoning_effort"] = "high" if think == "max" else think
    return out


def generate_messages(request: GenerateRequest) -> list[Message]:
    """A generate request as chat turns for the template: its system prompt (the core has put
    the model's there already), then the prompt (and its images) as one user turn."""
    head = [Message(role="system", content=request.system)] if request.system else []
    return [*head, Message(role="user", content=request.prompt, images=request.images)]
