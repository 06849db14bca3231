"""The model store: blobs, manifests, create/get/list/copy/delete, pruning and atomicity."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import msgspec
import pytest

from vllama.errors import BadRequest, ModelNotFound, NotFound
from vllama.gguf import InvalidGGUF
from vllama.names import parse_name
from vllama.store import ModelStore
from vllama.store.blobs import parse_digest
from vllama.store.describe import describe_directory
from vllama.store.store import FILE, MODEL, PARAMS, SYSTEM, TEMPLATE
from vllama.testing.gguf import tiny_model, write_gguf
from vllama.types import Message

TEMPLATE_TEXT = "{% for m in messages %}{{ m.content }}{% endfor %}"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


@pytest.fixture
def gguf_file(tmp_path: Path) -> Path:
    return tiny_model(tmp_path / "tiny.gguf", template=TEMPLATE_TEXT)


def make(store: ModelStore, name: str, gguf_file: Path, **fields: object):
    files = store.import_path(gguf_file)
    return store.create(parse_name(name), files=files, **fields)


def blob_files(store: ModelStore) -> set[str]:
    root = store.root / "blobs"
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


# -- blobs ------------------------------------------------------------------------------------


def test_blob_write_and_layout(store: ModelStore) -> None:
    digest = store.blobs.write_bytes(b"hello")
    assert digest == sha(b"hello")
    path = store.root / "blobs" / f"sha256-{hashlib.sha256(b'hello').hexdigest()}"
    assert path.read_bytes() == b"hello"
    assert store.blobs.path(digest) == path
    assert store.blobs.has(digest)
    assert store.blobs.require(digest) == path
    assert store.blobs.all() == {digest}


def test_blob_write_with_expected_digest(store: ModelStore) -> None:
    assert store.blobs.write_chunks([b"he", b"llo"], expected=sha(b"hello")) == sha(b"hello")
    # both separators are accepted for the expected digest
    assert store.blobs.write_bytes(b"x", expected=sha(b"x").replace(":", "-")) == sha(b"x")


def test_blob_digest_mismatch_leaves_nothing(store: ModelStore) -> None:
    wrong = sha(b"something else")
    with pytest.raises(BadRequest) as info:
        store.blobs.write_bytes(b"hello", expected=wrong)
    assert info.value.message == f'digest mismatch, expected "{wrong}", got "{sha(b"hello")}"'
    assert info.value.status == 400
    assert blob_files(store) == set()  # no blob, no .partial-* file


async def test_blob_stream_mismatch_leaves_nothing(store: ModelStore) -> None:
    async def chunks():
        yield b"a"
        yield b"b"

    with pytest.raises(BadRequest, match="digest mismatch"):
        await store.blobs.write_stream(chunks(), expected=sha(b"nope"))
    assert blob_files(store) == set()
    assert await store.blobs.write_stream(chunks(), expected=sha(b"ab")) == sha(b"ab")


async def test_blob_stream_failure_leaves_nothing(store: ModelStore) -> None:
    async def chunks():
        yield b"a"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        await store.blobs.write_stream(chunks())
    assert blob_files(store) == set()


def test_blob_chunk_failure_leaves_nothing(store: ModelStore) -> None:
    def chunks():
        yield b"a"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.blobs.write_chunks(chunks())
    assert blob_files(store) == set()


@pytest.mark.parametrize("digest", ["", "sha256:abc", "md5:" + "0" * 64, "sha256:" + "g" * 64, "sha256:" + "A" * 64, "../" + "0" * 64])
def test_bad_digests(store: ModelStore, digest: str) -> None:
    with pytest.raises(BadRequest, match="invalid digest format"):
        parse_digest(digest)
    with pytest.raises(BadRequest):
        store.blobs.path(digest)


def test_missing_blob(store: ModelStore) -> None:
    digest = "sha256:" + "0" * 64
    assert not store.blobs.has(digest)
    with pytest.raises(NotFound, match=f'blob "{digest}" not found'):
        store.blobs.require(digest)


def test_sweep_removes_what_a_crash_left(store: ModelStore, gguf_file: Path) -> None:
    ref = make(store, "kept", gguf_file)
    kept_blobs = blob_files(store)
    unused = store.blobs.write_bytes(b"uploaded for a create that never came")
    (store.root / "blobs" / ".partial-upload").write_bytes(b"half")
    tag_dir = store.root / "manifests" / "registry.ollama.ai" / "library" / "kept"
    (tag_dir / ".partial-manifest").write_bytes(b"{")
    (store.root / ".partial-describe").mkdir()
    (store.root / ".partial-describe" / "config.json").write_text("{}")
    (store.root / "snapshots" / "orphan").mkdir(parents=True)  # a snapshot no model refers to

    store.sweep()

    assert blob_files(store) == kept_blobs
    assert not store.blobs.has(unused)
    assert [p.name for p in tag_dir.iterdir()] == ["latest"]
    assert not (store.root / ".partial-describe").exists()
    assert not (store.root / "snapshots" / "orphan").exists()
    assert store.require(parse_name("kept")) == ref


def test_sweep_without_prune_keeps_unused_blobs(store: ModelStore) -> None:
    unused = store.blobs.write_bytes(b"uploaded, create not sent yet")
    (store.root / "blobs" / ".partial-upload").write_bytes(b"half")
    store.sweep(prune=False)
    assert blob_files(store) == {f"sha256-{parse_digest(unused)}"}


def test_sweep_keeps_snapshots_in_use(store: ModelStore, hf_dir: Path) -> None:
    ref = store.create(parse_name("dir"), files=store.import_path(hf_dir))
    snapshot = Path(ref.path)
    assert snapshot.is_dir()
    store.sweep()
    assert snapshot.is_dir() and (snapshot / "config.json").read_text().startswith("{")


def test_list_skips_a_model_damaged_outside_the_store(store: ModelStore, gguf_file: Path, tmp_path: Path) -> None:
    make(store, "whole", gguf_file)
    other = tiny_model(tmp_path / "other.gguf", template="{{ messages }}")
    make(store, "broken", other, system="lost")
    manifest = json.loads((store.root / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest").read_bytes())
    store.blobs.remove(manifest["config"]["digest"])  # e.g. removed by hand
    assert [r.name for r in store.list()] == ["whole:latest"]


# -- create / get / list ------------------------------------------------------------------------


def test_create_from_gguf(store: ModelStore, gguf_file: Path) -> None:
    progress: list[str] = []
    files = store.import_path(gguf_file, progress.append)
    assert files == {"tiny.gguf": sha(gguf_file.read_bytes())}
    ref = store.create(parse_name("tiny"), files=files, progress=progress.append)
    assert progress[0] == "copying file tiny.gguf"
    assert "parsing GGUF" in progress and progress[-2:] == ["writing manifest", "success"]

    assert ref.name == "tiny:latest"
    assert ref.format == "gguf"
    assert Path(ref.path) == store.blobs.path(files["tiny.gguf"])
    assert Path(ref.path).read_bytes() == gguf_file.read_bytes()
    assert ref.details.format == "gguf"
    assert ref.details.family == "llama"
    assert ref.details.families == ["llama"]
    assert ref.details.quantization_level == "F32"
    assert ref.details.parameter_size == "128"
    assert ref.info["general.architecture"] == "llama"
    assert ref.info["general.parameter_count"] == 128
    assert ref.info["llama.context_length"] == 2048
    assert "tokenizer.chat_template" not in ref.info
    assert ref.template == TEMPLATE_TEXT
    assert "completion" in ref.capabilities
    assert ref.parameters == {} and ref.system == "" and ref.messages == [] and ref.license == []
    assert ref.size == sum(p.stat().st_size for p in (store.root / "blobs").iterdir())
    assert len(ref.digest) == 64 and ref.modified_at.endswith("Z")


def test_manifest_layout(store: ModelStore, gguf_file: Path) -> None:
    ref = make(store, "Tiny:V1", gguf_file, system="be brief")
    manifest_path = store.root / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "v1"
    assert manifest_path.is_file()
    raw = manifest_path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == ref.digest
    manifest = json.loads(raw)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    media = [layer["mediaType"] for layer in manifest["layers"]]
    assert media == [MODEL, SYSTEM]
    for layer in [manifest["config"], *manifest["layers"]]:
        blob = store.root / "blobs" / layer["digest"].replace(":", "-")
        assert blob.is_file() and blob.stat().st_size == layer["size"]
        assert sha(blob.read_bytes()) == layer["digest"]
    config = json.loads((store.root / "blobs" / manifest["config"]["digest"].replace(":", "-")).read_bytes())
    assert config["model_format"] == "gguf" and config["model_family"] == "llama"


def test_namespaced_and_hosted_layout(store: ModelStore, gguf_file: Path) -> None:
    make(store, "team/tiny:q4", gguf_file)
    make(store, "hf.co/Org/Repo:Q4_K_M", gguf_file)
    assert (store.root / "manifests/registry.ollama.ai/team/tiny/q4").is_file()
    assert (store.root / "manifests/hf.co/org/repo/q4_k_m").is_file()
    assert {r.name for r in store.list()} == {"team/tiny:q4", "hf.co/org/repo:q4_k_m"}


def test_names_are_case_insensitive(store: ModelStore, gguf_file: Path) -> None:
    created = make(store, "MyModel:Latest", gguf_file)
    for text in ("mymodel", "MYMODEL:latest", "registry.ollama.ai/library/MyModel:LATEST", "mymodel:latest"):
        ref = store.get(parse_name(text))
        assert ref is not None and ref.digest == created.digest
    # Re-creating with another case replaces, not duplicates.
    make(store, "MYMODEL", gguf_file, system="x")
    assert len(store.list()) == 1
    assert store.require(parse_name("mymodel")).system == "x"


def test_get_missing(store: ModelStore) -> None:
    assert store.get(parse_name("nothing")) is None
    assert store.list() == []
    with pytest.raises(ModelNotFound, match="model 'nothing:latest' not found") as info:
        store.require(parse_name("nothing"))
    assert info.value.status == 404


def test_list_newest_first(store: ModelStore, gguf_file: Path) -> None:
    for i, name in enumerate(("a", "b", "c")):
        make(store, name, gguf_file)
        path = store.root / "manifests/registry.ollama.ai/library" / name / "latest"
        os.utime(path, (1_700_000_000 + i * 10, 1_700_000_000 + i * 10))
    assert [r.name for r in store.list()] == ["c:latest", "b:latest", "a:latest"]


def test_list_ignores_partial_manifests(store: ModelStore, gguf_file: Path) -> None:
    make(store, "real", gguf_file)
    (store.root / "manifests/registry.ollama.ai/library/real/.partial-xyz").write_text("{")
    assert [r.name for r in store.list()] == ["real:latest"]


def test_create_with_all_fields(store: ModelStore, gguf_file: Path) -> None:
    msgs = [Message(role="user", content="hi"), Message(role="assistant", content="hello")]
    ref = make(
        store,
        "full",
        gguf_file,
        parameters={"temperature": 0.2, "stop": ["<|im_end|>"]},
        template="{{ .Prompt }}",
        system="sys",
        license=["MIT", "Apache"],
        messages=msgs,
    )
    assert ref.parameters == {"temperature": 0.2, "stop": ["<|im_end|>"]}
    assert ref.template == "{{ .Prompt }}"
    assert ref.system == "sys"
    assert ref.license == ["MIT", "Apache"]
    assert ref.messages == msgs
    again = store.require(parse_name("full"))
    assert again.parameters == ref.parameters and again.messages == msgs


def test_template_layer_drives_capabilities(store: ModelStore, gguf_file: Path) -> None:
    ref = make(store, "tools", gguf_file, template="{% if tools %}{{ tools }}{% endif %}<think>")
    assert "tools" in ref.capabilities and "thinking" in ref.capabilities
    plain = make(store, "plain", gguf_file)
    assert "tools" not in plain.capabilities and "thinking" not in plain.capabilities


def test_create_needs_files_or_base(store: ModelStore) -> None:
    with pytest.raises(BadRequest, match="neither 'from' nor 'files'"):
        store.create(parse_name("x"))


def test_create_with_missing_blob(store: ModelStore) -> None:
    missing = "sha256:" + "1" * 64
    with pytest.raises(NotFound, match=f'blob "{missing}" not found'):
        store.create(parse_name("x"), files={"model.gguf": missing})
    store.blobs.write_bytes(b"{}")
    with pytest.raises(NotFound, match=f'blob "{missing}" not found'):
        store.create(parse_name("x"), files={"config.json": missing, "model.safetensors": missing})
    assert store.list() == []


def test_create_directory_model_with_missing_blob_on_fresh_store(store: ModelStore) -> None:
    # Regression: the store root did not exist yet, so this was a FileNotFoundError (500).
    assert not store.root.exists()
    missing = "sha256:" + "1" * 64
    with pytest.raises(NotFound):
        store.create(parse_name("x"), files={"config.json": missing, "model.safetensors": missing})


@pytest.mark.parametrize("rel", ["/etc/passwd", "../escape.gguf", "a/../../b.gguf", ""])
def test_create_rejects_unsafe_file_names(store: ModelStore, gguf_file: Path, rel: str) -> None:
    digest = store.blobs.import_file(gguf_file)
    with pytest.raises(BadRequest, match="invalid file name"):
        store.create(parse_name("x"), files={rel: digest})


def test_create_refuses_invalid_gguf(store: ModelStore, tmp_path: Path, gguf_file: Path) -> None:
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(gguf_file.read_bytes()[:-10])
    with pytest.raises(InvalidGGUF, match="truncated"):
        store.create(parse_name("cut"), files=store.import_path(truncated))
    text = tmp_path / "notes.gguf"
    text.write_text("just text")
    with pytest.raises(BadRequest, match="not a GGUF file"):
        store.create(parse_name("text"), files=store.import_path(text))
    assert store.list() == []


def test_several_ggufs_are_refused(store: ModelStore, tmp_path: Path, gguf_file: Path) -> None:
    other = write_gguf(tmp_path / "other.gguf", {"general.architecture": "llama"})
    files = {**store.import_path(gguf_file), **store.import_path(other)}
    with pytest.raises(BadRequest, match="one .gguf file"):
        store.create(parse_name("two"), files=files)


def test_single_gguf_without_extension_is_detected(store: ModelStore, tmp_path: Path, gguf_file: Path) -> None:
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes(gguf_file.read_bytes())
    assert store.create(parse_name("noext"), files=store.import_path(renamed)).format == "gguf"


def test_crash_while_creating_leaves_no_model(store: ModelStore, gguf_file: Path) -> None:
    files = store.import_path(gguf_file)

    def crash(status: str) -> None:
        if status == "writing manifest":
            raise KeyboardInterrupt("power cut")

    with pytest.raises(KeyboardInterrupt):
        store.create(parse_name("half"), files=files, system="s", progress=crash)
    assert store.get(parse_name("half")) is None
    assert store.list() == []
    assert not (store.root / "manifests/registry.ollama.ai/library/half/latest").exists()


def test_crash_while_replacing_keeps_old_model(store: ModelStore, gguf_file: Path) -> None:
    old = make(store, "m", gguf_file, system="old")

    def crash(status: str) -> None:
        if status == "writing manifest":
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        make(store, "m", gguf_file, system="new", progress=crash)
    ref = store.require(parse_name("m"))
    assert ref.system == "old" and ref.digest == old.digest


def test_manifest_rename_failure_leaves_no_model(store: ModelStore, gguf_file: Path, monkeypatch) -> None:
    files = store.import_path(gguf_file)
    real_replace = os.replace

    def replace(src: object, dst: object) -> None:
        if "manifests" in str(dst):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        store.create(parse_name("x"), files=files)
    monkeypatch.undo()
    assert store.list() == []
    assert store.get(parse_name("x")) is None


# -- copy / delete / prune ----------------------------------------------------------------------


def test_copy(store: ModelStore, gguf_file: Path) -> None:
    src = make(store, "src", gguf_file, system="hello")
    store.copy(parse_name("src"), parse_name("Team/Dest:V2"))
    dest = store.require(parse_name("team/dest:v2"))
    assert dest.digest == src.digest and dest.path == src.path and dest.system == "hello"
    assert {r.name for r in store.list()} == {"src:latest", "team/dest:v2"}
    with pytest.raises(NotFound, match='model "nope:latest" not found'):
        store.copy(parse_name("nope"), parse_name("x"))


def test_replacing_a_model_removes_layers_only_it_used(store: ModelStore, gguf_file: Path, tmp_path: Path) -> None:
    make(store, "a", gguf_file, system="first")
    make(store, "keeper", gguf_file, system="kept")
    with_first = blob_files(store)
    make(store, "a", gguf_file, system="second")
    first = f"sha256-{hashlib.sha256(b'first').hexdigest()}"
    assert first in with_first and first not in blob_files(store)
    other = tiny_model(tmp_path / "other.gguf", template="{{ messages }}")
    make(store, "b", other)
    store.copy(parse_name("keeper"), parse_name("b"))  # b's own weights go, keeper's stay
    assert store.require(parse_name("b")).system == "kept"
    assert blob_files(store) == with_first - {first} | {f"sha256-{hashlib.sha256(b'second').hexdigest()}"}


def test_delete_prunes_unreferenced_blobs(store: ModelStore, gguf_file: Path) -> None:
    make(store, "a", gguf_file, system="only a")
    before = blob_files(store)
    store.delete(parse_name("A"))
    assert store.get(parse_name("a")) is None
    assert blob_files(store) == set()
    assert before
    with pytest.raises(ModelNotFound):
        store.delete(parse_name("a"))


def test_delete_keeps_blobs_used_by_a_copy(store: ModelStore, gguf_file: Path) -> None:
    a = make(store, "a", gguf_file, system="shared")
    store.copy(parse_name("a"), parse_name("b"))
    before = blob_files(store)
    store.delete(parse_name("a"))
    assert blob_files(store) == before
    b = store.require(parse_name("b"))
    assert Path(b.path).is_file() and b.system == "shared" and b.digest == a.digest
    store.delete(parse_name("b"))
    assert blob_files(store) == set()


def test_delete_keeps_shared_weights_drops_own_layers(store: ModelStore, gguf_file: Path) -> None:
    a = make(store, "a", gguf_file, system="system of a")
    make(store, "b", gguf_file, system="system of b")
    store.delete(parse_name("a"))
    assert Path(a.path).is_file()  # the weights are shared with b
    assert not store.blobs.has(sha(b"system of a"))
    assert store.blobs.has(sha(b"system of b"))


def test_delete_leaves_unrelated_orphans_alone(store: ModelStore, gguf_file: Path) -> None:
    make(store, "a", gguf_file)
    orphan = store.blobs.write_bytes(b"orphan")
    make(store, "b", gguf_file, system="b")
    store.delete(parse_name("b"))
    assert store.blobs.has(orphan)
    assert store.get(parse_name("a")) is not None


# -- create from a base model ----------------------------------------------------------------------


def test_create_from_base_keeps_weights_and_changes_parameters(store: ModelStore, gguf_file: Path) -> None:
    base = make(store, "base", gguf_file, parameters={"temperature": 0.5, "top_k": 10}, system="base system")
    derived = store.create(parse_name("derived"), base=base, parameters={"temperature": 0.1}, system="new system")
    assert derived.path == base.path  # same weights blob
    base_manifest = json.loads((store.root / "manifests/registry.ollama.ai/library/base/latest").read_bytes())
    derived_manifest = json.loads((store.root / "manifests/registry.ollama.ai/library/derived/latest").read_bytes())
    weights = lambda m: [layer["digest"] for layer in m["layers"] if layer["mediaType"] == MODEL]
    assert weights(base_manifest) == weights(derived_manifest)
    assert len(weights(derived_manifest)) == 1
    assert derived.parameters == {"temperature": 0.1, "top_k": 10}
    assert derived.system == "new system"
    assert derived.digest != base.digest
    assert derived.details == base.details and derived.info == base.info
    # The base model is unchanged.
    again = store.require(parse_name("base"))
    assert again.parameters == {"temperature": 0.5, "top_k": 10} and again.system == "base system"


def test_create_from_base_inherits_unset_fields(store: ModelStore, gguf_file: Path) -> None:
    base = make(
        store,
        "base",
        gguf_file,
        parameters={"top_k": 3},
        template="T",
        system="S",
        license=["L"],
        messages=[Message(role="user", content="u")],
    )
    derived = store.create(parse_name("child"), base=base)
    assert (derived.parameters, derived.template, derived.system, derived.license) == ({"top_k": 3}, "T", "S", ["L"])
    assert derived.messages == [Message(role="user", content="u")]
    media = [
        layer["mediaType"]
        for layer in json.loads((store.root / "manifests/registry.ollama.ai/library/child/latest").read_bytes())["layers"]
    ]
    assert media.count(MODEL) == 1 and TEMPLATE in media and PARAMS in media


def test_create_from_base_with_empty_system_clears_it(store: ModelStore, gguf_file: Path) -> None:
    base = make(store, "base", gguf_file, system="S")
    assert store.create(parse_name("c"), base=base, system="").system == ""


def test_base_deleted_derived_survives(store: ModelStore, gguf_file: Path) -> None:
    base = make(store, "base", gguf_file)
    derived = store.create(parse_name("derived"), base=base, system="x")
    store.delete(parse_name("base"))
    ref = store.require(parse_name("derived"))
    assert Path(ref.path).is_file() and ref.path == derived.path


# -- a model directory (safetensors) ----------------------------------------------------------------


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    header, data, offset = {}, b"", 0
    for name, (dtype, shape) in tensors.items():
        n = {"F32": 4, "BF16": 2, "F16": 2}[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        data += bytes(n)
        offset += n
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.fixture
def hf_dir(tmp_path: Path) -> Path:
    d = tmp_path / "hf-model"
    d.mkdir()
    (d / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "max_position_embeddings": 4096,
                "hidden_size": 16,
                "num_hidden_layers": 2,
            }
        )
    )
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}).encode()
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(24))
    (d / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}<think>"}))
    (d / ".hidden").write_text("skipped")
    return d


def test_directory_model(store: ModelStore, hf_dir: Path) -> None:
    files = store.import_path(hf_dir)
    assert set(files) == {"config.json", "model.safetensors", "tokenizer_config.json"}
    ref = store.create(parse_name("hf-tiny"), files=files)
    assert ref.format == "safetensors"
    assert ref.details.format == "safetensors"
    assert ref.details.family == "llama"
    assert ref.details.quantization_level == "F32"
    assert ref.info["general.parameter_count"] == 6
    assert ref.info["general.architectures"] == "LlamaForCausalLM"
    assert ref.info["llama.context_length"] == 4096
    assert ref.info["llama.embedding_length"] == 16
    assert ref.info["llama.block_count"] == 2
    assert ref.template == "{{ messages }}<think>"
    assert "completion" in ref.capabilities and "thinking" in ref.capabilities

    path = Path(ref.path)
    assert path.is_dir()
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors", "tokenizer_config.json"]
    for name, digest in files.items():
        link = path / name
        assert link.is_symlink()
        assert link.resolve() == store.blobs.path(digest).resolve()
        assert link.read_bytes() == (hf_dir / name).read_bytes()
    manifest = json.loads((store.root / "manifests/registry.ollama.ai/library/hf-tiny/latest").read_bytes())
    titles = {layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"] if layer["mediaType"] == FILE}
    assert titles == set(files)
    # The same snapshot is answered on the next lookup.
    assert store.require(parse_name("hf-tiny")).path == ref.path


def test_a_vision_encoder_makes_a_vision_model(hf_dir: Path) -> None:
    """The config's ``vision_config`` (Idefics3, LLaVA, Qwen2-VL...) is what marks a model as
    taking images; a text-only config does not."""
    assert "vision" not in describe_directory(hf_dir).capabilities
    config = json.loads((hf_dir / "config.json").read_text())
    vision = {"hidden_size": 64, "patch_size": 16}
    vlm = {"architectures": ["Idefics3ForConditionalGeneration"], "model_type": "idefics3", "text_config": config, "vision_config": vision}
    (hf_dir / "config.json").write_text(json.dumps(vlm))
    described = describe_directory(hf_dir)
    assert "vision" in described.capabilities and "completion" in described.capabilities
    assert described.info["idefics3.context_length"] == 4096


def test_directory_model_with_subfolder_and_several_shards(store: ModelStore, hf_dir: Path) -> None:
    (hf_dir / "model.safetensors").unlink()
    for i, shape in enumerate(([4, 4], [10])):
        (hf_dir / f"model-0000{i}.safetensors").write_bytes(safetensors_bytes({f"t{i}": ("BF16", shape)}))
    (hf_dir / "sub").mkdir()
    (hf_dir / "sub" / "extra.txt").write_text("x")
    files = store.import_path(hf_dir)
    assert "sub/extra.txt" in files
    ref = store.create(parse_name("shards"), files=files)
    assert ref.info["general.parameter_count"] == 26
    assert ref.details.quantization_level == "BF16"
    assert (Path(ref.path) / "sub" / "extra.txt").read_text() == "x"


def test_directory_snapshot_pruned_with_model(store: ModelStore, hf_dir: Path) -> None:
    ref = store.create(parse_name("d"), files=store.import_path(hf_dir))
    assert Path(ref.path).is_dir()
    store.delete(parse_name("d"))
    assert not Path(ref.path).exists()
    assert blob_files(store) == set()


def test_directory_without_config_is_refused(store: ModelStore, hf_dir: Path) -> None:
    (hf_dir / "config.json").unlink()
    with pytest.raises(BadRequest, match="no config.json"):
        store.create(parse_name("bad"), files=store.import_path(hf_dir))
    assert store.list() == []


def test_directory_without_weights_is_refused(store: ModelStore, hf_dir: Path) -> None:
    (hf_dir / "model.safetensors").unlink()
    with pytest.raises(BadRequest, match="no .safetensors"):
        store.create(parse_name("bad"), files=store.import_path(hf_dir))


def test_directory_with_corrupt_safetensors_is_refused(store: ModelStore, hf_dir: Path) -> None:
    (hf_dir / "model.safetensors").write_bytes(struct.pack("<Q", 10) + b"not json!!")
    with pytest.raises(BadRequest, match="invalid safetensors header"):
        store.create(parse_name("bad"), files=store.import_path(hf_dir))


def test_import_missing_path(store: ModelStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file or directory"):
        store.import_path(tmp_path / "missing")


def test_manifest_round_trips_through_msgspec(store: ModelStore, gguf_file: Path) -> None:
    from vllama.store.store import Manifest

    make(store, "m", gguf_file, system="s")
    raw = (store.root / "manifests/registry.ollama.ai/library/m/latest").read_bytes()
    manifest = msgspec.json.decode(raw, type=Manifest)
    assert msgspec.json.encode(manifest) == raw


def test_delete_keeps_uploaded_blobs_awaiting_create(store: ModelStore, gguf_file: Path) -> None:
    # Regression (race): delete() used to prune every unreferenced blob, including one just
    # uploaded via /api/blobs for a create still to come. Ollama removes only the model's own layers.
    make(store, "old", gguf_file)
    pending = store.blobs.write_bytes(b"uploaded for a create in flight")
    store.delete(parse_name("old"))
    assert store.blobs.has(pending)


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_churn_never_leaves_a_model_without_its_blobs(
    store: ModelStore, gguf_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Threads upload the same weights, create a model from them and delete it again, while
    another lists: a delete removes the last user's blobs at the moment another create is
    writing its manifest. Every model that exists must stay whole; a lost race is a NotFound."""
    import threading

    failures: list[BaseException] = []
    stop = threading.Event()

    def churn(i: int) -> None:
        name = parse_name(f"m{i}")
        try:
            for _ in range(30):
                try:
                    files = store.import_path(gguf_file)
                    ref = store.create(name, files=files, system=f"model {i}")
                    assert Path(ref.path).is_file() and ref.system == f"model {i}"
                    store.copy(name, parse_name(f"m{i}-copy"))
                    store.delete(parse_name(f"m{i}-copy"))
                    store.delete(name)
                except NotFound:  # a blob another thread's delete removed before this create began
                    pass
            while True:  # the last create must win: a lost race is a NotFound, and it tries again
                try:
                    store.create(name, files=store.import_path(gguf_file))
                    break
                except NotFound:
                    pass
        except BaseException as e:
            failures.append(e)

    def lister() -> None:
        try:
            while not stop.is_set():
                for ref in store.list():
                    store.get(parse_name(ref.name))
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(4)]
    watcher = threading.Thread(target=lister)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert failures == []
    assert "skipping" not in caplog.text  # list never met a model missing a blob
    assert sorted(r.name for r in store.list()) == [f"m{i}:latest" for i in range(4)]
    for i in range(4):
        assert Path(store.require(parse_name(f"m{i}")).path).is_file()
