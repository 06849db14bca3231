"""A stand-in chat server on loopback for ``vllama bench``'s tests: ``POST /api/chat`` (Ollama,
NDJSON when streaming) and ``POST /v1/chat/completions`` (OpenAI, server-sent events when
streaming). Each reply names a digest of the request's messages, so it is the same for the same
request on any server and tells which request it answered. Every request is logged with its
body, its reply and when it arrived and was answered; ``delay`` holds each answer back."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback import Loopback, StandinServer


@dataclass(frozen=True)
class Logged:
    path: str
    body: dict[str, Any]
    reply: str
    arrived: float
    answered: float


def reply_to(messages: list[dict[str, Any]]) -> str:
    """The stand-in's answer: a few words naming the messages it was sent."""
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:12]
    return f"Noted, reference {digest} for {len(messages)} messages."


@dataclass
class ChatStandin(Loopback):
    delay: float = 0.0
    log: list[Logged] = field(default_factory=list)
    #: Requests being answered right now, and the most there were at once.
    in_flight: int = 0
    most_in_flight: int = 0
    url: str = ""

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def bodies(self) -> list[dict[str, Any]]:
        return [entry.body for entry in self.log]


def _ollama(body: dict[str, Any], reply: str) -> bytes:
    words = reply.split(" ")
    usage = {"prompt_eval_count": len(json.dumps(body["messages"]).split()), "eval_count": len(words)}
    if not body.get("stream", True):
        return json.dumps({"message": {"role": "assistant", "content": reply}, "done": True, **usage}).encode()
    pieces = [{"message": {"role": "assistant", "content": w if i == 0 else " " + w}, "done": False} for i, w in enumerate(words)]
    pieces.append({"message": {"role": "assistant", "content": ""}, "done": True, **usage})
    return b"".join(json.dumps(p).encode() + b"\n" for p in pieces)


def _openai(body: dict[str, Any], reply: str) -> bytes:
    words = reply.split(" ")
    usage = {"prompt_tokens": len(json.dumps(body["messages"]).split()), "completion_tokens": len(words)}
    if not body.get("stream"):
        return json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}], "usage": usage}).encode()
    pieces: list[dict[str, Any]] = [{"choices": [{"delta": {"content": w if i == 0 else " " + w}}]} for i, w in enumerate(words)]
    pieces.append({"choices": [], "usage": usage})
    return b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in pieces) + b"data: [DONE]\n\n"


class _Handler(BaseHTTPRequestHandler):
    server: StandinServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        standin = self.server.standin
        arrived = time.monotonic()
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with standin.lock:
            standin.in_flight += 1
            standin.most_in_flight = max(standin.most_in_flight, standin.in_flight)
        time.sleep(standin.delay)
        reply = reply_to(body["messages"])
        render = {"/api/chat": _ollama, "/v1/chat/completions": _openai}.get(self.path)
        data = render(body, reply) if render else b'{"error": "not found"}'
        with standin.lock:
            standin.in_flight -= 1
            standin.log.append(Logged(self.path, body, reply, arrived, time.monotonic()))
        self.send_response(200 if render else 404)
        self.send_header("Content-Type", "application/x-ndjson" if self.path == "/api/chat" else "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ChatStandin.handler = _Handler
