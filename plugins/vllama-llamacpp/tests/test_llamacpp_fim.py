"""Fill-in-the-middle end to end on llama.cpp: Qwen2.5-Coder-0.5B-Instruct (GGUF, whose FIM
tokens llama.cpp finds by their text) and SmolLM2 (none) behind ``vllama serve``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vllama.testing.fill_in_the_middle import MODEL, PLAIN, FillInTheMiddle
from vllama.testing.hf_models import qwen_coder_gguf, smollm2_gguf
from vllama.testing.server import ServerProcess, create_model


class TestLlamaCppFim(FillInTheMiddle):
    @pytest.fixture(scope="class")
    def server(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        with ServerProcess(tmp_path_factory.mktemp("fim") / "models") as server:
            create_model(server.url, MODEL, qwen_coder_gguf(), parameters={"num_thread": 1, "num_ctx": 2048})
            create_model(server.url, PLAIN, smollm2_gguf(), parameters={"num_thread": 1})
            yield server
