"""An existing Ollama store: laid out exactly as Ollama lays one out, built here from a GGUF; a
``vllama serve`` pointed at it lists and serves its models and leaves it byte-for-byte unchanged,
and ``vllama import-ollama`` adopts it into vllama's own store with hard links."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from vllama.cli.store import import_ollama
from vllama.config import Settings
from vllama.names import parse_name
from vllama.store import ModelStore
from vllama.testing.gguf import tiny_model
from vllama.testing.server import ServerProcess

sys.path.insert(0, str(Path(__file__).parent))
from registry_standin import OllamaModel, build_model, write_store

ECHO_ENV = {"VLLAMA_PLUGINS": "none", "VLLAMA_PLUGIN_MODULES": "vllama.testing.echo"}
GO_TEMPLATE = "{{ if .System }}<|system|>{{ .System }}{{ end }}<|user|>{{ .Prompt }}<|assistant|>"
SYSTEM = "You answer in one word."


def tree(root: Path) -> dict[str, tuple[str, int, int, str]]:
    """Every path under ``root``: its kind, size, modification time (ns) and, for files, SHA-256."""
    out = {}
    for top, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(top) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
            out[str(path.relative_to(root))] = ("dir" if path.is_dir() else "file", st.st_size, st.st_mtime_ns, digest)
    st = root.lstat()
    out["."] = ("dir", st.st_size, st.st_mtime_ns, "")
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OllamaModel]:
    tmp = tmp_path_factory.mktemp("gguf")
    weights = tiny_model(tmp / "tiny.gguf").read_bytes()
    return {
        "library/tiny:latest": build_model(
            weights, template=GO_TEMPLATE, system=SYSTEM, params=json.dumps({"stop": ["<|user|>"], "num_ctx": 256})
        ),
        "someone/Mixed:V1": build_model(weights + bytes(32), license="MIT"),
        "library/tensors:latest": build_model(b"\0" * 64, media="tensor", model_format="safetensors"),
        "library/lora:latest": build_model(weights, adapter="an adapter's bytes"),
    }


@pytest.fixture()
def ollama_store(tmp_path: Path, models: dict[str, OllamaModel]) -> Path:
    """An Ollama store, with what Ollama leaves besides models: a download in progress and a blob no model uses."""
    root = tmp_path / "ollama" / "models"
    write_store(root, models)
    (root / "blobs" / f"sha256-{'a' * 64}-partial").write_bytes(b"half a blob")
    (root / "blobs" / f"sha256-{'a' * 64}-partial-0").write_text('{"N": 0, "Offset": 0, "Size": 11}')
    (root / "blobs" / f"sha256-{hashlib.sha256(b'unused').hexdigest()}").write_bytes(b"unused")
    return root


@pytest.fixture()
def served(ollama_store: Path) -> Iterator[tuple[Path, ServerProcess]]:
    with ServerProcess(ollama_store, ECHO_ENV) as server:
        yield ollama_store, server


def test_an_ollama_store_is_listed_and_served_and_left_unchanged(ollama_store: Path) -> None:
    before = tree(ollama_store)
    with ServerProcess(ollama_store, ECHO_ENV) as server:
        url = server.url
        tags = {m["name"]: m for m in httpx.get(f"{url}/api/tags", timeout=30).json()["models"]}
        assert set(tags) == {"tiny:latest", "someone/Mixed:V1"}  # the tensor-layer and adapter models do not run here
        assert tags["tiny:latest"]["details"]["format"] == "gguf"
        show = httpx.post(f"{url}/api/show", json={"model": "tiny"}, timeout=30).json()
        assert show["template"] == GO_TEMPLATE and show["system"] == SYSTEM
        assert show["model_info"]["general.architecture"] == "llama" and "completion" in show["capabilities"]
        assert httpx.post(f"{url}/api/show", json={"model": "someone/mixed:v1"}, timeout=30).json()["license"] == "MIT"
        chat = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "stream": False}
        answer = httpx.post(f"{url}/api/chat", json=chat, timeout=60)
        assert answer.status_code == 200 and answer.json()["done"] is True, answer.text
        generate = httpx.post(f"{url}/api/generate", json={"model": "someone/mixed:v1", "prompt": "hi", "stream": False}, timeout=60)
        assert generate.status_code == 200, generate.text
        for method, path, body in [
            ("POST", "/api/pull", {"model": "tiny"}),
            ("DELETE", "/api/delete", {"model": "tiny"}),
            ("POST", "/api/copy", {"source": "tiny", "destination": "tiny2"}),
            ("POST", "/api/create", {"model": "tiny3", "from": "tiny", "system": "x", "stream": False}),
        ]:
            r = httpx.request(method, f"{url}{path}", json=body, timeout=30)
            assert r.status_code == 403 and "an Ollama store, which vllama only reads" in r.json()["error"], (path, r.text)
        blob = httpx.post(f"{url}/api/blobs/sha256:{hashlib.sha256(b'x').hexdigest()}", content=b"x", timeout=30)
        assert blob.status_code == 403, blob.text
    assert tree(ollama_store) == before


def test_ollama_models_points_vllama_at_the_store(ollama_store: Path, tmp_path: Path) -> None:
    settings = Settings.from_env({"OLLAMA_MODELS": str(ollama_store)})
    assert settings.models_dir == ollama_store and ModelStore(settings.models_dir).read_only
    own = ModelStore(tmp_path / "own")
    assert not own.read_only


def test_import_ollama_adopts_the_store_with_hard_links(ollama_store: Path, tmp_path: Path, models: dict[str, OllamaModel]) -> None:
    before = tree(ollama_store)
    into = tmp_path / "vllama"
    result = CliRunner().invoke(import_ollama, [str(ollama_store), "--into", str(into)])
    assert result.exit_code == 0, result.output
    assert "imported tiny:latest (4 blobs linked, 0 copied)" in result.output
    assert "imported someone/Mixed:V1 (2 blobs linked, 0 copied)" in result.output
    assert "skipped tensors:latest: 'tensors:latest' has its weights in the safetensors format" in result.output
    assert "skipped lora:latest: 'lora:latest' has a LoRA adapter layer" in result.output
    store = ModelStore(into)
    assert not store.read_only  # what vllama writes is its own: the config is vllama's
    ref = store.require(parse_name("tiny"))
    assert ref.template == GO_TEMPLATE and ref.system == SYSTEM and ref.parameters == {"stop": ["<|user|>"], "num_ctx": 256}
    assert ref.info["general.architecture"] == "llama"
    weights = models["library/tiny:latest"].digest_of("model").replace(":", "-")
    assert (into / "blobs" / weights).stat().st_ino == (ollama_store / "blobs" / weights).stat().st_ino
    assert store.require(parse_name("someone/mixed:v1")).license == ["MIT"]
    assert tree(ollama_store) == before
    again = CliRunner().invoke(import_ollama, [str(ollama_store), "--into", str(into)])
    assert "imported tiny:latest (0 blobs linked, 0 copied)" in again.output  # nothing taken in twice


def test_import_ollama_skips_a_model_whose_blob_does_not_match(ollama_store: Path, tmp_path: Path, models: dict[str, OllamaModel]) -> None:
    """A blob damaged on disk: that model is skipped with the reason, and none of its blobs are kept."""
    weights = ollama_store / "blobs" / models["someone/Mixed:V1"].digest_of("model").replace(":", "-")
    weights.write_bytes(weights.read_bytes()[:-1] + b"!")
    into = tmp_path / "vllama"
    result = CliRunner().invoke(import_ollama, [str(ollama_store), "--into", str(into)])
    assert result.exit_code == 0 and "skipped someone/Mixed:V1: " in result.output and "digest mismatch" in result.output, result.output
    assert not (into / "blobs" / weights.name).exists() and ModelStore(into).get(parse_name("tiny")) is not None


def test_import_ollama_needs_an_ollama_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(import_ollama, [str(tmp_path), "--into", str(tmp_path / "vllama")])
    assert result.exit_code != 0 and "is not an Ollama models directory" in result.output
