"""Fill-in-the-middle end to end on MLX (CPU): Qwen2.5-Coder-0.5B-Instruct (safetensors, FIM
tokens from its tokenizer) and SmolLM2 (none) behind ``vllama serve``. The converted Qwen ends
only at ``<|im_end|>`` by its generation config: the middle's end tokens stop it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vllama.testing.fill_in_the_middle import MODEL, PLAIN, FillInTheMiddle
from vllama.testing.hf_models import qwen_coder_safetensors, smollm2_safetensors
from vllama.testing.server import ServerProcess, create_from_dir


class TestMlxFim(FillInTheMiddle):
    @pytest.fixture(scope="class")
    def server(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        env = {"VLLAMA_BACKEND": "mlx", "VLLAMA_CONTEXT_LENGTH": "2048"}
        with ServerProcess(tmp_path_factory.mktemp("fim") / "models", env) as server:
            create_from_dir(server.url, MODEL, qwen_coder_safetensors())
            create_from_dir(server.url, PLAIN, smollm2_safetensors())
            yield server
