"""Cheap to start: the CLI and the server import no engine library."""

from __future__ import annotations

import os
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


CLI_DEFERRED = ("pluggy", "vllama.hookspecs", "vllama.plugins", "httpx", "msgspec", "rich", "litestar", "uvicorn")


def deferred_modules_after(argv: list[str]) -> list[str]:
    body = f"""
import sys
from vllama.cli.main import main
sys.argv = {argv!r}
try:
    main()
except SystemExit:
    pass
print("LOADED:" + ",".join(m for m in {CLI_DEFERRED!r} if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.splitlines()[-1].removeprefix("LOADED:").split(",") if m]


def test_cli_help_loads_no_plugin_and_no_http_client() -> None:
    """``vllama --help`` and a command's ``--help`` import neither plugins nor the libraries the commands use."""
    assert deferred_modules_after(["vllama", "--help"]) == []
    assert deferred_modules_after(["vllama", "run", "--help"]) == []


def test_client_commands_load_no_plugin(monkeypatch) -> None:
    """``vllama list`` needs the HTTP client (which brings rich), not pluggy or the hook specs."""
    monkeypatch.setenv("VLLAMA_HOST", "127.0.0.1:9")  # nothing listens: list says so and exits
    assert set(deferred_modules_after(["vllama", "list"])) <= {"httpx", "rich"}


def test_a_plugins_command_runs_though_help_loads_no_plugin(tmp_path) -> None:
    (tmp_path / "greeter.py").write_text(
        "import click\nfrom vllama import hookimpl\n\n@hookimpl\ndef register_commands(cli):\n"
        "    cli.add_command(click.Command('greet', callback=lambda: click.echo('greetings')))\n"
    )
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "VLLAMA_PLUGIN_MODULES": "greeter"}
    out = subprocess.run([sys.executable, "-m", "vllama", "greet"], capture_output=True, text=True, env=env, check=True)
    assert out.stdout == "greetings\n"
