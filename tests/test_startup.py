"""Cheap to start: the CLI and the server import no engine library."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "vllm", "llama_cpp", "mlx", "transformers", "numpy")

CHECK = f"""
import sys
{{body}}
print("HEAVY:" + ",".join(m for m in {HEAVY!r} if m in sys.modules))
"""


def heavy_modules_after(body: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", CHECK.format(body=body)], capture_output=True, text=True, check=True)
    line = out.stdout.splitlines()[-1]
    assert line.startswith("HEAVY:"), out.stdout
    return [m for m in line.removeprefix("HEAVY:").split(",") if m]


def test_cli_help_imports_no_engine() -> None:
    body = """
from vllama.cli.main import main
sys.argv = ["vllama", "--help"]
try:
    main()
except SystemExit:
    pass
"""
    assert heavy_modules_after(body) == []


def test_server_start_imports_no_engine(tmp_path) -> None:
    """With every installed plugin loaded (entry points included), start the app and answer GET /."""
    body = f"""
import os
os.environ["VLLAMA_MODELS"] = {str(tmp_path)!r}
from litestar.testing import TestClient
from vllama.core import Vllama
from vllama.server.app import create_app
with TestClient(create_app(Vllama())) as client:
    assert client.get("/").text == "Ollama is running"
    assert client.get("/api/tags").status_code == 200
"""
    assert heavy_modules_after(body) == []
