"""Thinking end to end on vLLM (CPU build): Qwen2.5-Coder-0.5B-Instruct (safetensors) with a
Qwen3-shaped thinking template behind ``vllama serve``, split by vLLM's own qwen3 reasoning
parser (chosen from the template)."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from vllama.testing.hf_models import qwen_coder_safetensors
from vllama.testing.server import ServerProcess, create_from_dir
from vllama.testing.thinking import MODEL, ThinkingWithFormat, create_thinking_model

pytestmark = pytest.mark.engine


class TestVllmThinking(ThinkingWithFormat):
    @pytest.fixture(scope="class")
    def server(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        env = {"VLLAMA_PLUGINS": "vllm", "VLLAMA_NUM_PARALLEL": "2", "VLLAMA_CONTEXT_LENGTH": "2048"}
        with ServerProcess(tmp_path_factory.mktemp("thinking") / "models", env) as server:
            create = functools.partial(create_from_dir, server.url, MODEL, qwen_coder_safetensors(), parameters={"num_thread": 1})
            create_thinking_model(create)
            yield server
