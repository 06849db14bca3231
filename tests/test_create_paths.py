"""/api/create reads server paths only under VLLAMA_CREATE_DIRS, never follows links out of them,
answers one error for a missing or a disallowed path, and leaves nothing behind when it fails;
names and ``from`` are validated as given (in process, echo backend)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from vllama.config import Settings
from vllama.core import Vllama
from vllama.plugins import make_plugin_manager
from vllama.server.app import create_app
from vllama.store.files import MAX_SMALL_FILE, is_model_file, model_files
from vllama.testing.gguf import tiny_model

Client = TestClient[Any]


def serve(tmp: Path, **settings: Any) -> TestClient[Any]:
    pm = make_plugin_manager(load_entrypoints=False, modules=["vllama.testing.echo"])
    return TestClient(create_app(Vllama(Settings(models_dir=tmp / "models", **settings), pm=pm)))


def stored(tmp: Path) -> set[str]:
    """Every file under the store: what a request left behind."""
    root = tmp / "models"
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def create(c: Client, **body: Any) -> Any:
    return c.post("/api/create", json={"model": "m", "stream": False, **body})


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    d = tmp_path / "allowed"
    d.mkdir()
    tiny_model(d / "tiny.gguf")
    return d


@pytest.fixture
def default_client(tmp_path: Path) -> Iterator[Client]:
    with serve(tmp_path) as c:
        yield c


@pytest.fixture
def client(tmp_path: Path, allowed: Path) -> Iterator[Client]:
    with serve(tmp_path, create_dirs=(allowed,)) as c:
        yield c


# -- off by default ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/etc/passwd", "/etc", "/no/such/file", "~", "./tiny.gguf", "../x"])
def test_server_paths_are_refused_by_default_and_nothing_is_written(default_client: Client, tmp_path: Path, path: str) -> None:
    r = create(default_client, **{"from": path})
    assert r.status_code == 400, r.text
    assert "creating from a path on the server is disabled" in r.json()["error"]
    assert stored(tmp_path) == set()
    assert default_client.get("/api/tags").json()["models"] == []


def test_the_setting_is_read_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"VLLAMA_CREATE_DIRS": f"/srv/models{os.pathsep}{tmp_path}"})
    assert settings.create_dirs == (Path("/srv/models"), tmp_path)
    assert Settings.from_env({}).create_dirs == ()


# -- allowed directories -----------------------------------------------------------------------


def test_a_file_in_an_allowed_directory_is_created(client: Client, allowed: Path) -> None:
    r = create(client, **{"from": str(allowed / "tiny.gguf")})
    assert r.status_code == 200, r.text
    assert [m["name"] for m in client.get("/api/tags").json()["models"]] == ["m:latest"]


def test_missing_unreadable_and_outside_paths_get_one_answer(client: Client, allowed: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.gguf"
    tiny_model(outside)
    unreadable = allowed / "secret.gguf"
    tiny_model(unreadable)
    unreadable.chmod(0)
    (allowed / "link.gguf").symlink_to(outside)
    answers = {}
    for path in (
        str(allowed / "missing.gguf"),
        str(outside),
        "/etc/passwd",
        str(allowed / "link.gguf"),
        str(allowed / ".." / "outside.gguf"),
        str(unreadable) if os.geteuid() != 0 else "/nowhere",
    ):
        r = create(client, **{"from": path})
        answers[path] = (r.status_code, r.json()["error"].replace(path[:200], "PATH"))
    assert set(answers.values()) == {(400, "cannot read 'PATH': no readable file or directory of that name in VLLAMA_CREATE_DIRS")}, answers
    assert client.get("/api/tags").json()["models"] == []


def test_links_out_of_an_allowed_directory_are_not_followed(client: Client, allowed: Path, tmp_path: Path) -> None:
    model = allowed / "hf"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").symlink_to("/etc/passwd")
    r = create(client, **{"from": str(model)})
    assert r.status_code == 400 and r.json()["error"] == "model.safetensors: links outside VLLAMA_CREATE_DIRS"
    assert stored(tmp_path) == set()


def test_a_directory_is_read_for_model_files_only(client: Client, allowed: Path, tmp_path: Path) -> None:
    model = allowed / "hf"
    (model / "sub" / "deeper").mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    (model / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    for junk in ("id_rsa", "notes.py", ".env", "sub/deeper/tokenizer.json", "sub/run.sh"):
        (model / junk).write_text("not for the store")
    r = create(client, **{"from": str(model)})
    assert r.status_code == 200, r.text
    blobs = {(tmp_path / "models" / "blobs" / name).read_bytes() for name in os.listdir(tmp_path / "models" / "blobs")}
    assert b"not for the store" not in blobs


def test_failed_create_from_a_path_leaves_no_blobs(client: Client, allowed: Path, tmp_path: Path) -> None:
    (allowed / "broken.gguf").write_bytes(b"GGUF" + bytes(12))
    r = create(client, **{"from": str(allowed / "broken.gguf"), "system": "kept nowhere"})
    assert r.status_code == 400, r.text
    assert stored(tmp_path) == set()


def test_binary_config_json_is_a_400(client: Client, allowed: Path, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.post(f"/api/blobs/{digest}", content=data).status_code == 201
    r = create(client, files={"config.json": digest, "model.safetensors": digest})
    assert r.status_code == 400 and r.json()["error"] == "config.json: not UTF-8 text", r.text
    text = b'["a list"]'
    tdigest = "sha256:" + hashlib.sha256(text).hexdigest()
    assert client.post(f"/api/blobs/{tdigest}", content=text).status_code == 201
    r = create(client, files={"config.json": tdigest, "model.safetensors": digest})
    assert r.status_code == 400 and r.json()["error"] == "config.json: not a JSON object", r.text


# -- from: a model or a blob, validated as given -----------------------------------------------


def test_from_a_blob_digest(client: Client, allowed: Path) -> None:
    data = (allowed / "tiny.gguf").read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.post(f"/api/blobs/{digest}", content=data).status_code == 201
    assert create(client, **{"from": digest}).status_code == 200
    assert create(client, model="n", **{"from": "@" + digest}).status_code == 200
    missing = create(client, model="o", **{"from": "sha256:" + "0" * 64})
    assert missing.status_code == 404 and "not found" in missing.json()["error"]


def test_a_ten_kilobyte_from_name_is_an_invalid_name(default_client: Client) -> None:
    r = create(default_client, **{"from": "x" * 10_000})
    assert r.status_code == 400 and r.json()["error"].startswith("invalid model name 'xxx"), r.text
    assert len(r.json()["error"]) < 400


def test_whitespace_in_a_name_is_refused_and_never_stripped(client: Client, allowed: Path) -> None:
    assert create(client, model="smol", **{"from": str(allowed / "tiny.gguf")}).status_code == 200
    for body in ({"model": "smol\n"}, {"model": " smol"}, {"model": "smol:latest\t"}):
        r = client.request("DELETE", "/api/delete", json=body)
        assert r.status_code == 400 and "invalid model name" in r.json()["error"], r.text
    r = client.post("/api/copy", json={"source": "smol\n", "destination": "other"})
    assert r.status_code == 400, r.text
    assert create(client, model="smol2\n", **{"from": "smol"}).status_code == 400
    assert create(client, model="smol3", **{"from": "smol "}).status_code == 400
    assert [m["name"] for m in client.get("/api/tags").json()["models"]] == ["smol:latest"]


# -- which files make a model ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "size", "expected"),
    [
        ("model.safetensors", 10**12, True),
        ("model.gguf", 10**12, True),
        ("config.json", 100, True),
        ("tokenizer.model", 100, True),
        ("chat_template.jinja", 100, True),
        ("1_Pooling/config.json", 100, True),
        ("config.json", MAX_SMALL_FILE + 1, False),
        ("a/b/config.json", 100, False),
        (".git/config.json", 100, False),
        ("run.py", 100, False),
        ("id_rsa", 100, False),
    ],
)
def test_is_model_file(rel: str, size: int, expected: bool) -> None:
    assert is_model_file(rel, size) is expected


def test_model_files_lists_only_model_files(tmp_path: Path) -> None:
    for rel in ("config.json", "model.safetensors", "1_Pooling/config.json", "a/b/c.json", "x.sh", ".hidden.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    assert list(model_files(tmp_path)) == ["1_Pooling/config.json", "config.json", "model.safetensors"]
