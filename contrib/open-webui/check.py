"""Open WebUI against vllama, through Open WebUI's own API: what its pages do when you pick a model
and chat. Run it against an Open WebUI whose ``OLLAMA_BASE_URL`` is a running vllama (compose.yaml,
or docs/deploy.md's commands without containers):

    python contrib/open-webui/check.py --open-webui http://127.0.0.1:3000 --model smollm2:135m

It signs up the first user (who becomes the admin) on a fresh Open WebUI, or signs in with
``--email``/``--password``, then checks each step and prints what it got; it exits 1 at the first
step that fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import httpx


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--open-webui", default="http://127.0.0.1:3000")
    parser.add_argument("--model", default="smollm2:135m")
    parser.add_argument("--email", default="admin@example.com")
    parser.add_argument("--password", default="vllama-check")
    args = parser.parse_args()
    client = httpx.Client(base_url=args.open_webui, timeout=300)
    user = {"name": "admin", "email": args.email, "password": args.password}
    signed = client.post("/api/v1/auths/signup", json=user)
    if signed.status_code != 200:
        signed = client.post("/api/v1/auths/signin", json={"email": args.email, "password": args.password})
    signed.raise_for_status()
    client.headers["Authorization"] = f"Bearer {signed.json()['token']}"
    chat = {"model": args.model, "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    options = {"temperature": 0, "num_predict": 24}
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("Ollama version through Open WebUI (GET /ollama/api/version)", lambda: client.get("/ollama/api/version").json()["version"]),
        ("the model in vllama's list (GET /ollama/api/tags)", lambda: _named(client.get("/ollama/api/tags").json()["models"], args.model)),
        ("the model in Open WebUI's picker (GET /api/models)", lambda: _named(client.get("/api/models").json()["data"], args.model, "id")),
        ("its details (POST /ollama/api/show)", lambda: client.post("/ollama/api/show", json={"model": args.model}).json()["details"]),
        (
            "a chat (POST /api/chat/completions)",
            lambda: _answer(client.post("/api/chat/completions", json=chat | {"stream": False, "options": options})),
        ),
        ("a streamed chat, as the chat page sends it", lambda: _streamed(client, chat | {"stream": True, "options": options})),
        ("loaded models (GET /ollama/api/ps)", lambda: [m["name"] for m in client.get("/ollama/api/ps").json()["models"]]),
    ]
    for title, step in steps:
        try:
            result = step()
        except Exception as exc:  # report the failing step, whatever it raised
            print(f"FAIL  {title}: {exc!r}")
            return 1
        print(f"ok    {title}: {json.dumps(result)[:200]}")
    return 0


def _named(models: list[dict[str, Any]], name: str, key: str = "name") -> str:
    names = [m[key] for m in models]
    if name not in names:
        raise LookupError(f"{name} not in {names}")
    return name


def _answer(response: httpx.Response) -> str:
    response.raise_for_status()
    content = response.json()["choices"][0]["message"]["content"]
    if not isinstance(content, str) or not content.strip():
        raise ValueError(f"no answer: {response.text[:200]}")
    return content


def _streamed(client: httpx.Client, body: dict[str, Any]) -> str:
    parts = []
    with client.stream("POST", "/api/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for choice in json.loads(line[6:]).get("choices", []):
                    parts.append(choice.get("delta", {}).get("content") or "")
    if len(parts) < 2 or not "".join(parts).strip():
        raise ValueError(f"not a stream of chunks: {parts}")
    return f"{len(parts)} chunks: {''.join(parts)}"


if __name__ == "__main__":
    sys.exit(main())
