"""Plugins extend the server and the CLI through register_routes and register_commands,
and take part in model resolution and backend selection."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click
from click.testing import CliRunner
from litestar import get
from litestar.testing import TestClient

from vllama import hookimpl
from vllama.config import Settings
from vllama.core import Vllama
from vllama.plugins import make_plugin_manager
from vllama.selection import Candidate
from vllama.server.app import create_app
from vllama.store.describe import describe_gguf
from vllama.testing.gguf import tiny_model
from vllama.types import ModelRef


@get("/hello", media_type="text/plain")
async def hello() -> str:
    return "hello from a plugin"


class RoutesPlugin:
    @hookimpl
    def register_routes(self, register) -> None:
        register(hello)


class CommandsPlugin:
    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        @cli.command()
        def greet() -> None:
            click.echo("greetings")


def make_vllama(tmp_path: Path, *plugins: object) -> Vllama:
    pm = make_plugin_manager(load_entrypoints=False, modules=["vllama.testing.echo"])
    for plugin in plugins:
        pm.register(plugin)
    return Vllama(Settings(models_dir=tmp_path / "models"), pm=pm)


def test_register_routes_adds_a_route(tmp_path: Path) -> None:
    with TestClient(create_app(make_vllama(tmp_path, RoutesPlugin()))) as client:
        assert client.get("/hello").text == "hello from a plugin"
        assert client.get("/api/version").status_code == 200


def test_register_commands_adds_a_command() -> None:
    from vllama.cli.main import cli

    group = click.Group(commands=dict(cli.commands))
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(CommandsPlugin())
    pm.hook.register_commands(cli=group)
    result = CliRunner().invoke(group, ["greet"])
    assert result.exit_code == 0 and result.output == "greetings\n"


class AliasResolver:
    """Resolves ``alias`` to a model file kept outside the store."""

    def __init__(self, path: Path) -> None:
        self.ref = ModelRef(name="alias:latest", format="gguf", path=str(path), capabilities=describe_gguf(path).capabilities)

    @hookimpl
    def resolve_model(self, name) -> ModelRef | None:
        return self.ref if name.model == "alias" else None


class PreferIsolated:
    @hookimpl
    def select_backend(self, candidates: Sequence[Candidate]) -> Candidate | None:
        return next((c for c in candidates if c.backend.name == "echo-isolated"), None)


def test_resolve_and_select_hooks_decide(tmp_path: Path) -> None:
    weights = tiny_model(tmp_path / "w.gguf")
    v = make_vllama(tmp_path, AliasResolver(weights), PreferIsolated())
    with TestClient(create_app(v)) as client:
        r = client.post("/api/generate", json={"model": "alias", "prompt": "via a plugin", "stream": False})
        assert r.status_code == 200 and r.json()["response"] == "via a plugin"
        assert client.get("/api/ps").json()["models"][0]["backend"] == "echo-isolated"
        assert client.post("/api/generate", json={"model": "other", "prompt": "x"}).status_code == 404


def test_plugin_module_setting_registers_modules(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VLLAMA_PLUGIN_MODULES", "vllama.testing.echo")
    monkeypatch.setenv("VLLAMA_PLUGINS", "none")
    monkeypatch.setenv("VLLAMA_MODELS", str(tmp_path))
    v = Vllama()
    assert set(v.backends) == {"echo", "echo-isolated", "echo-text", "echo-plain"}
    assert v.pm.get_plugin("vllama.testing.echo") is sys.modules["vllama.testing.echo"]
