"""Thinking end to end on llama.cpp: Qwen2.5-Coder-0.5B-Instruct (GGUF) with a Qwen3-shaped
thinking template behind ``vllama serve``, split by the core's parser."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from vllama.testing.hf_models import qwen_coder_gguf
from vllama.testing.server import ServerProcess, create_model
from vllama.testing.thinking import MODEL, Thinking, create_thinking_model


class TestLlamaCppThinking(Thinking):
    @pytest.fixture(scope="class")
    def server(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        with ServerProcess(tmp_path_factory.mktemp("thinking") / "models", {"VLLAMA_NUM_PARALLEL": "2"}) as server:
            parameters = {"num_thread": 1, "num_ctx": 2048}
            create_thinking_model(functools.partial(create_model, server.url, MODEL, qwen_coder_gguf(), parameters=parameters))
            yield server
