"""The core's conformance suite on the real SmolLM2-135M-Instruct (safetensors), in a worker process."""

from __future__ import annotations

from vllama.testing.suite import Conformance
from vllama_mlx.backend import MlxBackend


class TestMlxConformance(Conformance):
    backend_class = MlxBackend  # on the conftest's smollm2; MLX has no thread setting
