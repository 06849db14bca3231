"""The README's first command: ``scripts/demo`` serves the starter model, asks it a question
through the official ``ollama`` client, stops the server and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vllama.testing.server import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(sys.platform == "win32", reason="a bash script")
def test_the_demo_answers_and_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "VLLAMA_MODELS": str(tmp_path / "models"), "VLLAMA_HOST": f"127.0.0.1:{free_port()}"}
    env.pop("OLLAMA_HOST", None)
    done = subprocess.run([str(ROOT / "scripts" / "demo")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr[-3000:]}"
    question, answer = done.stdout.splitlines()[:2]
    assert question == ">>> What is the capital of France? Answer in one sentence."
    assert "Paris" in answer  # the starter model at temperature 0
