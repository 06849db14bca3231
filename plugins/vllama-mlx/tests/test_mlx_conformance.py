"""The core's conformance suite on the real SmolLM2-135M-Instruct (safetensors), in a worker process."""

from __future__ import annotations

import pytest

from vllama.engine import Backend
from vllama.testing.conformance import BackendConformance
from vllama.types import LoadSettings, ModelRef
from vllama_mlx.backend import MlxBackend


class TestMlxConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> type[Backend]:
        return MlxBackend

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, smollm2: ModelRef) -> ModelRef:
        return smollm2

    @pytest.fixture(scope="class")
    @classmethod
    def settings(cls) -> LoadSettings:
        return LoadSettings(num_ctx=512, parallel=4)
