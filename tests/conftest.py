"""Hermetic core tests: the echo backend, fresh plugin managers, real HTTP."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vllama.testing.gguf import tiny_model
from vllama.testing.server import ServerProcess, create_model

#: A template that makes the store see a chat model with tools and thinking.
CHAT_TEMPLATE = "{% for m in messages %}{{ m.content }}{% endfor %}{% if tools %}{% endif %}{% if enable_thinking %}<think>{% endif %}"

ECHO_ENV = {"VLLAMA_PLUGINS": "none", "VLLAMA_PLUGIN_MODULES": "vllama.testing.echo"}

#: Hermetic: servers that pull a short name never ask Ollama's registry (a port nothing listens on
#: refuses at once); the tests of registry pulls point this at their stand-in.
os.environ.setdefault("VLLAMA_REGISTRY", "http://127.0.0.1:9")


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("weights") / "tiny.gguf", template=CHAT_TEMPLATE)


def start_server(tmp_path: Path, **env: str) -> ServerProcess:
    """A ``vllama serve`` with only the echo backend, and ``env`` settings."""
    return ServerProcess(tmp_path / "models", {**ECHO_ENV, **env}).start()


@pytest.fixture
def echo_server_with() -> Callable[..., ServerProcess]:
    return start_server


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[ServerProcess]:
    """One echo server per module, with the model ``echo`` installed."""
    server = start_server(tmp_path_factory.mktemp("echo"))
    try:
        create_model(server.url, "echo", tiny_gguf)
        yield server
    finally:
        server.stop()
