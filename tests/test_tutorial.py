"""docs/plugins/tutorial.md works as written: its files, copied into an empty folder, make a
backend package whose conformance suite passes, whose entry point vllama finds, and that
``vllama serve`` runs for the official ``ollama`` client.

Each fenced block of the tutorial that begins with ``# file: PATH`` is one file of the package.
The package is not pip-installed (that needs a build backend and a fresh environment): its
``src`` goes on ``PYTHONPATH``, and a ``.dist-info`` folder holding the entry points that the
``pyproject.toml`` declares (what an installer writes for them) makes the entry point
discoverable, so the server finds the backend through ``VLLAMA_PLUGINS=mirror`` alone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import ollama
import pytest

from vllama.testing.conformance import BackendConformance
from vllama.testing.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "plugins" / "tutorial.md"

#: The files the tutorial must give, whole.
PACKAGE_FILES = {
    "pyproject.toml",
    "src/vllama_mirror/__init__.py",
    "src/vllama_mirror/backend.py",
    "src/vllama_mirror/engine.py",
    "tests/test_conformance.py",
    "tests/test_plugin.py",
    "make_model.py",
    "Modelfile",
    "chat.py",
}


def tutorial_files(text: str) -> dict[str, str]:
    """``{path: content}`` for every fenced block whose first line is ``# file: PATH``."""
    files: dict[str, str] = {}
    for block in re.findall(r"^```[\w-]*\n(.*?)^```", text, flags=re.S | re.M):
        first, _, _ = block.partition("\n")
        if match := re.fullmatch(r"# file: (\S+)", first.strip()):
            path = match.group(1)
            assert path not in files, f"the tutorial gives {path} twice"
            files[path] = block
    return files


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial's files, written into an empty folder."""
    root = tmp_path_factory.mktemp("tutorial") / "vllama-mirror"
    for rel, content in tutorial_files(TUTORIAL.read_text()).items():
        path = root / rel
        assert root in path.resolve().parents, f"{rel} is outside the package folder"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def pyproject(package: Path) -> dict:
    with (package / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def installed_view(package: Path, site: Path) -> Path:
    """A ``.dist-info`` folder for the package in ``site``, as an installer writes it:
    its name, version and the entry points its pyproject declares."""
    project = pyproject(package)["project"]
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, entries in project.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in entries.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


def env_with_path(*paths: Path, **extra: str) -> dict[str, str]:
    pythonpath = os.pathsep.join([*(str(p) for p in paths), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": pythonpath, **extra}


def test_the_tutorial_gives_every_file() -> None:
    assert set(tutorial_files(TUTORIAL.read_text())) == PACKAGE_FILES


def test_the_pyproject_declares_a_vllama_entry_point(package: Path) -> None:
    data = pyproject(package)
    assert data["build-system"]["build-backend"] == "hatchling.build"
    assert any(r.startswith("hatchling") for r in data["build-system"]["requires"])
    project = data["project"]
    assert project["name"] == "vllama-mirror"
    assert any(re.match(r"vllama\b(?!-)", dep) for dep in project["dependencies"])
    entry_points = project["entry-points"]["vllama"]
    assert entry_points == {"mirror": "vllama_mirror"}
    # The entry point names a module the wheel ships.
    (packaged,) = data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert packaged == "src/" + entry_points["mirror"]
    assert (package / packaged / "__init__.py").is_file()


def test_vllama_finds_the_plugin_through_its_entry_point(package: Path, tmp_path: Path) -> None:
    site = installed_view(package, tmp_path / "site")
    result = subprocess.run(
        [sys.executable, "-m", "vllama", "plugins"],
        env=env_with_path(site, package / "src", VLLAMA_PLUGINS="mirror", VLLAMA_PLUGIN_MODULES=""),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^mirror +vllama-mirror 0\.1\.0 +register_backends$", result.stdout, flags=re.M), result.stdout
    assert "backends: mirror (vllama_mirror.backend)" in result.stdout
    assert result.stdout.strip() in TUTORIAL.read_text(), "the tutorial shows what `vllama plugins` prints"


def test_the_conformance_suite_passes(package: Path) -> None:
    report = package / "report.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=package,
        env=env_with_path(package / "src"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)", summary)}
    assert counts.get("passed", 0) > 0 and not counts.get("failed") and not counts.get("error") and not counts.get("errors"), summary

    # Nothing failed; every test of the suite ran, and the only ones skipped need a
    # capability the mirror does not declare.
    cases = list(ET.parse(report).iter("testcase"))
    assert all(c.find("failure") is None and c.find("error") is None for c in cases)
    assert counts["passed"] == sum(1 for c in cases if c.find("skipped") is None), summary
    suite = {c.get("name", ""): c.find("skipped") for c in cases if c.get("classname", "").endswith("TestMirrorConformance")}
    assert set(suite) == {name for name in dir(BackendConformance) if name.startswith("test_")}
    skipped = {name: s.get("message", "") for name, s in suite.items() if s is not None}
    assert set(skipped) == {"test_format_json", "test_logprobs", "test_embeddings"}, skipped
    assert all("does not declare" in message for message in skipped.values()), skipped


def test_serve_and_chat_with_the_ollama_client(package: Path, tmp_path: Path) -> None:
    site = installed_view(package, tmp_path / "site")
    env = env_with_path(site, package / "src", VLLAMA_PLUGINS="mirror", VLLAMA_PLUGIN_MODULES="")
    subprocess.run([sys.executable, "make_model.py"], cwd=package, env=env, check=True, timeout=60)
    assert (package / "tiny.gguf").is_file()

    with ServerProcess(tmp_path / "models", {k: env[k] for k in ("PYTHONPATH", "VLLAMA_PLUGINS", "VLLAMA_PLUGIN_MODULES")}) as server:
        client_env = {**env, "VLLAMA_HOST": server.url.removeprefix("http://"), "OLLAMA_HOST": server.url}
        created = subprocess.run(
            [sys.executable, "-m", "vllama", "create", "mirror", "-f", "Modelfile"],
            cwd=package,
            env=client_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stderr + server.log()

        chat = subprocess.run([sys.executable, "chat.py"], cwd=package, env=client_env, capture_output=True, text=True, timeout=60)
        assert chat.returncode == 0, chat.stderr + server.log()
        assert chat.stdout.splitlines() == ["world mirror hello ", "'four three ' length 2"], chat.stdout

        client = ollama.Client(host=server.url)
        parts = list(client.chat(model="mirror", messages=[{"role": "user", "content": "a b c d e"}], stream=True, options={"stop": ["b"]}))
        assert [p.message.content for p in parts if not p.done] == ["e ", "d ", "c "]
        assert parts[-1].done and parts[-1].done_reason == "stop" and parts[-1].eval_count == 4

        reply = client.generate(model="mirror", prompt="one two three")
        assert reply.response == "three two one " and reply.done_reason == "stop" and reply.eval_count == 3
        assert reply.prompt_eval_count == 3 and reply.eval_duration and reply.eval_duration > 0

        with pytest.raises(ollama.ResponseError) as refused:
            client.chat(model="mirror", messages=[{"role": "user", "content": "hi"}], format="json")
        assert refused.value.status_code == 400 and "with the mirror backend" in refused.value.error

        loaded = httpx.get(server.url + "/api/ps", timeout=10).json()["models"]
        assert [(m["name"], m["backend"]) for m in loaded] == [("mirror:latest", "mirror")]
