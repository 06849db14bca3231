"""Fill-in-the-middle end to end on vLLM (CPU build): Qwen2.5-Coder-0.5B-Instruct (safetensors,
FIM tokens from its tokenizer) and SmolLM2 (none) behind ``vllama serve``. The converted Qwen
ends only at ``<|im_end|>`` by its generation config: the middle's end tokens stop it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vllama.testing.fill_in_the_middle import MODEL, PLAIN, FillInTheMiddle
from vllama.testing.hf_models import qwen_coder_safetensors, smollm2_safetensors
from vllama.testing.server import ServerProcess, create_from_dir

pytestmark = pytest.mark.engine


class TestVllmFim(FillInTheMiddle):
    @pytest.fixture(scope="class")
    def server(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        env = {"VLLAMA_PLUGINS": "vllm", "VLLAMA_CONTEXT_LENGTH": "2048"}
        with ServerProcess(tmp_path_factory.mktemp("fim") / "models", env) as server:
            create_from_dir(server.url, MODEL, qwen_coder_safetensors(), parameters={"num_thread": 1})
            create_from_dir(server.url, PLAIN, smollm2_safetensors(), parameters={"num_thread": 1})
            yield server
