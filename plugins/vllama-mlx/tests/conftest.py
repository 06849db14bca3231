"""The real SmolLM2-135M-Instruct in safetensors (made from the PyPI GGUF), loaded as few times as possible."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from vllama.testing.hf_models import directory_ref, smollm2_safetensors
from vllama.testing.server import ServerProcess
from vllama.types import ModelRef

MODEL = "smollm2:135m"


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    return smollm2_safetensors()


def model_ref(path: Path, name: str = MODEL) -> ModelRef:
    return directory_ref(name, path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``vllama serve`` on the MLX backend: two sequences of 1024 tokens, a store of its own."""
    env = {"VLLAMA_BACKEND": "mlx", "VLLAMA_NUM_PARALLEL": "2", "VLLAMA_CONTEXT_LENGTH": "1024"}
    with ServerProcess(tmp_path_factory.mktemp("server") / "models", env) as server:
        yield server


@pytest.fixture(scope="session")
def smollm2(smollm2_dir: Path) -> ModelRef:
    return model_ref(smollm2_dir)


@pytest.fixture(scope="session")
def transformers5_dir(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same weights with the config transformers 5 writes: rope_theta only in rope_parameters."""
    target = tmp_path_factory.mktemp("transformers5")
    for f in smollm2_dir.iterdir():
        if f.name != "config.json":
            (target / f.name).symlink_to(f)
    config = json.loads((smollm2_dir / "config.json").read_text())
    config.pop("rope_theta")
    assert config["rope_parameters"]["rope_theta"] == 100000.0
    (target / "config.json").write_text(json.dumps(config))
    return target
