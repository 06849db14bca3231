"""Tool calling end to end on llama.cpp: Qwen2.5-Coder-0.5B-Instruct (GGUF) behind ``vllama serve``."""

from __future__ import annotations

from collections.abc import Iterator

import ollama
import pytest

from vllama.testing.hf_models import qwen_coder_gguf
from vllama.testing.server import ServerProcess, create_model
from vllama.testing.tool_calling import MODEL, ToolCalling


class TestLlamaCppTools(ToolCalling):
    @pytest.fixture(scope="class")
    def server(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        with ServerProcess(tmp_path_factory.mktemp("tools") / "models", {"VLLAMA_NUM_PARALLEL": "2"}) as server:
            create_model(server.url, MODEL, qwen_coder_gguf(), parameters={"num_thread": 1, "num_ctx": 2048})
            yield server

    def test_capabilities_are_exactly_completion_tools_and_insert(self, client: ollama.Client) -> None:
        assert client.show(MODEL).capabilities == ["completion", "tools", "insert"]
