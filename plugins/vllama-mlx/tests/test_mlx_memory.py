"""Memory on ``vllama serve`` with the MLX backend: the scheduler's estimate is what the engine
holds, and a context too large for the machine is refused before any load."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from vllama import memory
from vllama.testing.server import ServerProcess, create_from_dir, refused_before_load
from vllama.types import LoadSettings

from .conftest import model_ref

#: K and V x 30 layers x 3 KV heads x 64 x 2 bytes (bf16): SmolLM2's cache per token.
TOKEN_BYTES = 23_040


@pytest.fixture(scope="module")
def long_context_dir(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 with a config that claims 16M tokens of context (the largest num_ctx), so that
    the trained length does not cap the context a request asks for."""
    target = tmp_path_factory.mktemp("long-context")
    for f in smollm2_dir.iterdir():
        if f.is_file() and f.name != "config.json":
            (target / f.name).symlink_to(f)
    config = json.loads((smollm2_dir / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 2**24}))
    return target


def test_a_context_too_large_for_the_machine_is_refused_before_any_load(server: ServerProcess, long_context_dir: Path) -> None:
    create_from_dir(server.url, "smol-long", long_context_dir)
    needed = memory.needed_bytes(model_ref(long_context_dir), LoadSettings(num_ctx=2**24, parallel=2))
    assert needed == 269_030_016 + TOKEN_BYTES * 2**24 * 2 > memory.total_bytes()  # 720.3 GiB
    body = {"prompt": "Hi", "stream": False, "options": {"num_ctx": 2**24}}
    error = refused_before_load(server.url, "smol-long", "/api/generate", body)
    assert error.startswith("model requires more system memory (720.3 GiB) than is available (")
    assert error.endswith("for num_ctx 16777216 with 2 parallel; lower num_ctx or num_parallel")
    assert httpx.get(server.url + "/api/ps", timeout=10).json()["models"] == []
    assert server.worker_pids() == []


def test_the_estimate_is_what_the_loaded_engine_holds(server: ServerProcess, smollm2_dir: Path) -> None:
    """The scheduler's estimate (from the safetensors headers and config.json) equals the size
    the engine reports once loaded (from its arrays): weights plus 1024 x 2 tokens of cache."""
    create_from_dir(server.url, "smol", smollm2_dir)
    r = httpx.post(
        server.url + "/api/generate", json={"model": "smol", "prompt": "Hi", "stream": False, "options": {"num_predict": 2}}, timeout=300
    )
    assert r.status_code == 200, r.text
    (loaded,) = httpx.get(server.url + "/api/ps", timeout=10).json()["models"]
    estimate = memory.needed_bytes(model_ref(smollm2_dir), LoadSettings(num_ctx=1024, parallel=2))
    assert loaded["size"] == estimate == 269_030_016 + TOKEN_BYTES * 1024 * 2
