"""The conformance suite runs on the echo backend too (in process and in a worker process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vllama.engine import Backend
from vllama.store.describe import describe_gguf
from vllama.testing.conformance import BackendConformance
from vllama.testing.echo import EMBEDDING_DIM, EchoBackend, IsolatedEchoBackend
from vllama.testing.gguf import tiny_model
from vllama.types import LoadSettings, ModelRef


class TestEchoConformance(BackendConformance):
    question = "Is Paris the capital of France?"
    answer = "Paris"

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> type[Backend]:
        return EchoBackend

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
        path = tiny_model(tmp_path_factory.mktemp("echo") / "tiny.gguf", **{"llama.embedding_length": EMBEDDING_DIM})
        desc = describe_gguf(Path(path))
        return ModelRef(name="echo:latest", format="gguf", path=str(path), info=desc.info, capabilities=desc.capabilities)


class TestIsolatedEchoConformance(TestEchoConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> type[Backend]:
        return IsolatedEchoBackend

    @pytest.fixture(scope="class")
    @classmethod
    def settings(cls) -> LoadSettings:
        """Echo tokens cost nothing; a small delay makes streams overlap across the process boundary."""
        return LoadSettings(num_ctx=512, parallel=4, engine={"echo_delay": 0.01})
