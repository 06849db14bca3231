"""The documentation matches the code: every hook and setting is documented, and the
examples marked ``# test: run`` run."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vllama import config, hookspecs

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUNNABLE_PAGES = ("embedding.md", "plugins/backends.md")


def hookspec_signatures() -> dict[str, str]:
    """``name(arg, ...)`` for every hookspec, with its argument names in order."""
    out = {}
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(fn, "vllama_spec"):
            out[name] = f"{name}({', '.join(inspect.signature(fn).parameters)})"
    return out


def test_there_are_hookspecs() -> None:
    assert {"probe_hardware", "register_backends", "resolve_model", "select_backend"} <= set(hookspec_signatures())


@pytest.mark.parametrize("name", sorted(hookspec_signatures()))
def test_every_hook_has_a_heading_with_its_signature(name: str) -> None:
    signature = hookspec_signatures()[name]
    headings = [line for line in (DOCS / "plugins" / "hooks.md").read_text().splitlines() if line.startswith("## ")]
    assert any(signature in line for line in headings), f"docs/plugins/hooks.md needs a heading: ## {signature}"


def config_variables() -> list[str]:
    names = re.findall(r'\benv\(\s*"([A-Z_]+)"', inspect.getsource(config))
    assert names, "no env(...) calls found in vllama/config.py"
    return sorted(set(names))


@pytest.mark.parametrize("name", config_variables())
def test_every_setting_is_documented(name: str) -> None:
    assert f"VLLAMA_{name}" in (DOCS / "usage" / "serve.md").read_text()


@pytest.mark.parametrize("name", config.OLLAMA_ALIASES)
def test_every_ollama_alias_is_documented(name: str) -> None:
    assert f"OLLAMA_{name}" in (DOCS / "usage" / "serve.md").read_text()


def runnable_blocks() -> list[tuple[str, str]]:
    """Fenced python blocks whose first line is ``# test: run``, as (id, code)."""
    out = []
    for page in RUNNABLE_PAGES:
        path = DOCS / page
        text = path.read_text() if path.is_file() else ""
        for i, block in enumerate(re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)):
            if block.lstrip().startswith("# test: run"):
                out.append((f"{page}#{i}", block))
    return out


def test_there_are_runnable_examples() -> None:
    pages = {block_id.split("#")[0] for block_id, _ in runnable_blocks()}
    assert pages == set(RUNNABLE_PAGES)


BLOCKS = runnable_blocks()


@pytest.mark.parametrize(("block_id", "code"), BLOCKS, ids=[block_id for block_id, _ in BLOCKS])
def test_example_runs(block_id: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{block_id} failed:\n{result.stdout}\n{result.stderr}"


def capability_table() -> dict[str, dict[str, bool]]:
    """docs/usage/api.md's table of what each engine can do: capability -> backend -> yes/no."""
    text = (DOCS / "usage" / "api.md").read_text()
    table = text[text.index("| Capability | llama.cpp | vLLM | MLX |") :].split("\n\n")[0].splitlines()
    backends = ["llamacpp", "vllm", "mlx"]
    out: dict[str, dict[str, bool]] = {}
    for row in table[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        name = re.match(r"`(\w+)`", cells[0])
        assert name, f"a capability row must start with the capability in backticks: {row}"
        out[name.group(1)] = {b: cell.startswith("yes") for b, cell in zip(backends, cells[1:], strict=True)}
    return out


def test_the_capability_table_is_what_each_backend_declares() -> None:
    from vllama.engine import CAPABILITIES
    from vllama_llamacpp.backend import LlamaCppBackend
    from vllama_mlx.backend import MlxBackend
    from vllama_vllm.backend import VllmBackend

    table = capability_table()
    assert set(table) == CAPABILITIES
    for backend in (LlamaCppBackend, VllmBackend, MlxBackend):
        declared = {cap for cap, row in table.items() if row[backend.name]}
        assert declared == set(backend.capabilities), backend.name
