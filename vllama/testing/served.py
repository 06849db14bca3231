"""What the end-to-end suites (tool calling, thinking, fill-in-the-middle) share: a running
``vllama serve`` that a backend's test module provides, and the official clients on it."""

from __future__ import annotations

import ollama
import openai
import pytest

from vllama.testing.server import ServerProcess

#: Engines on two CPU cores: a first request may include a load of a minute or more.
TIMEOUT = 600


class ServedSuite:
    """A suite run against a server. Override the ``server`` fixture (class-scoped): a running
    ``vllama serve`` with the suite's models created."""

    @pytest.fixture(scope="class")
    def server(self) -> ServerProcess:
        raise NotImplementedError("override the server fixture: a vllama serve with the suite's models created")

    @pytest.fixture(scope="class")
    def client(self, server: ServerProcess) -> ollama.Client:
        return ollama.Client(host=server.url, timeout=TIMEOUT)

    @pytest.fixture(scope="class")
    def oai(self, server: ServerProcess) -> openai.OpenAI:
        return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=TIMEOUT)
