"""Hermetic core tests: the echo backend, fresh plugin managers, real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vllama.testing.gguf import tiny_model
from vllama.testing.server import ServerProcess

#: A template that makes the store see a chat model with tools and thinking.
CHAT_TEMPLATE = "{% for m in messages %}{{ m.content }}{% endfor %}{% if tools %}{% endif %}<think>"

ECHO_ENV = {"VLLAMA_PLUGINS": "none", "VLLAMA_PLUGIN_MODULES": "vllama.testing.echo"}


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("weights") / "tiny.gguf", template=CHAT_TEMPLATE)


def create_model(url: str, name: str, gguf: Path, **fields: object) -> None:
    """Upload a GGUF as a blob and create a model from it over the API."""
    import hashlib

    data = gguf.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    httpx.post(f"{url}/api/blobs/{digest}", content=data).raise_for_status()
    body = {"model": name, "files": {gguf.name: digest}, "stream": False, **fields}
    r = httpx.post(f"{url}/api/create", json=body, timeout=30)
    assert r.status_code == 200, r.text


def start_server(tmp_path: Path, **env: str) -> ServerProcess:
    return ServerProcess(tmp_path / "models", {**ECHO_ENV, **env}).start()


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[ServerProcess]:
    """One echo server per module, with the model ``echo`` installed."""
    server = start_server(tmp_path_factory.mktemp("echo"))
    try:
        create_model(server.url, "echo", tiny_gguf)
        yield server
    finally:
        server.stop()
