"""Thinking end to end on MLX (CPU): Qwen2.5-Coder-0.5B-Instruct (safetensors) with a
Qwen3-shaped thinking template behind ``vllama serve``, split by the core's parser."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from vllama.testing.hf_models import qwen_coder_safetensors
from vllama.testing.server import ServerProcess, create_from_dir
from vllama.testing.thinking import MODEL, Thinking, create_thinking_model


class TestMlxThinking(Thinking):
    @pytest.fixture(scope="class")
    def server(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        env = {"VLLAMA_BACKEND": "mlx", "VLLAMA_NUM_PARALLEL": "2", "VLLAMA_CONTEXT_LENGTH": "2048"}
        with ServerProcess(tmp_path_factory.mktemp("thinking") / "models", env) as server:
            create_thinking_model(functools.partial(create_from_dir, server.url, MODEL, qwen_coder_safetensors()))
            yield server
