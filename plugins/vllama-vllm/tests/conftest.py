"""Real models for the vLLM backend, made from PyPI packages and described as the store describes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from vllama.testing.hf_models import directory_ref, minilm_dir, smollm2_safetensors
from vllama.types import ModelRef


def ref_for(name: str, path: Path) -> ModelRef:
    return directory_ref(name, path)


@pytest.fixture(scope="session")
def smollm2() -> ModelRef:
    """SmolLM2-135M-Instruct as safetensors, converted once from the PyPI GGUF and cached."""
    return ref_for("smollm2-hf", smollm2_safetensors())


@pytest.fixture(scope="session")
def minilm() -> ModelRef:
    """all-MiniLM-L6-v2 from its PyPI package (384-d sentence embeddings)."""
    return ref_for("all-minilm", minilm_dir())
