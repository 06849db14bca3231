"""Capabilities that tell the truth: what ``/api/show`` lists for a model is exactly what
requests for it may use.

:func:`mismatches` sends, for each of Ollama's capabilities, the smallest request that needs
it (one greedy token) and compares the answer with the list. A listed capability must be
accepted; one that is not listed must be refused with a 400 that says so. ``embedding`` is
the exception, as in Ollama: it is listed for embedding models only, while a backend that
embeds may still embed with a generative model.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

#: A 1x1 PNG (one transparent pixel): the smallest image a vision request can carry.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360606060000000050001a5f645400000000049454e44ae426082"
    )
).decode()
_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
_ASK = [{"role": "user", "content": "hi"}]

#: For each capability: the route and the request fields that need it.
PROBES: dict[str, tuple[str, dict[str, Any]]] = {
    "completion": ("/api/generate", {"prompt": "hi"}),
    "tools": ("/api/chat", {"messages": _ASK, "tools": [_TOOL]}),
    "thinking": ("/api/chat", {"messages": _ASK, "think": True}),
    "insert": ("/api/generate", {"prompt": "def add(a, b):", "suffix": "\nprint(add(1, 2))\n"}),
    "vision": ("/api/chat", {"messages": [{"role": "user", "content": "What is this?", "images": [PIXEL]}]}),
    "embedding": ("/api/embed", {"input": "hi"}),
}


def mismatches(url: str, model: str, *, timeout: float = 600) -> list[str]:
    """Each capability whose answer disagrees with what ``/api/show`` lists; [] when none."""
    listed = httpx.post(f"{url}/api/show", json={"model": model}, timeout=timeout).json()["capabilities"]
    out = []
    for capability, (route, fields) in PROBES.items():
        body = {"model": model, "stream": False, "options": {"temperature": 0, "num_predict": 1}, **fields}
        response = httpx.post(url + route, json=body, timeout=timeout)
        refused = response.status_code == 400 and "does not support" in response.text
        accepted = response.status_code == 200
        if (capability in listed and not accepted) or (capability not in listed and not refused and capability != "embedding"):
            out.append(f"{capability} ({'listed' if capability in listed else 'not listed'}): {response.status_code} {response.text[:200]}")
    return out
