"""num_ctx past the model's trained context is capped there and logged, as Ollama does;
num_batch is capped at num_ctx; neither forces a reload."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from vllama.config import Settings
from vllama.core import Vllama
from vllama.plugins import make_plugin_manager
from vllama.server.app import create_app
from vllama.testing.gguf import tiny_model

Client = TestClient[Any]
TRAINED = 2048  # the tiny model's context_length


@pytest.fixture
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    tmp = tmp_path_factory.mktemp("cap")
    pm = make_plugin_manager(load_entrypoints=False, modules=["vllama.testing.echo"])
    weights = tiny_model(tmp / "tiny.gguf").read_bytes()
    digest = "sha256:" + hashlib.sha256(weights).hexdigest()
    with TestClient(create_app(Vllama(Settings(models_dir=tmp / "models", context_length=1024), pm=pm))) as c:
        assert c.post(f"/api/blobs/{digest}", content=weights).status_code == 201
        assert c.post("/api/create", json={"model": "echo", "files": {"tiny.gguf": digest}, "stream": False}).status_code == 200
        yield c


def _settings(client: Client) -> Any:
    runner = client.app.state.vllama.scheduler.runners["echo:latest"]
    return runner, runner.settings


def _generate(client: Client, **options: Any) -> None:
    r = client.post("/api/generate", json={"model": "echo", "prompt": "hi", "stream": False, "options": options})
    assert r.status_code == 200, r.text


def test_num_ctx_past_the_trained_context_is_capped_with_a_warning(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="vllama.scheduler"):
        _generate(client, num_ctx=100_000)
    assert [r.getMessage() for r in caplog.records] == [
        f"requested context size too large for echo:latest: num_ctx 100000, using the trained {TRAINED}"
    ]
    runner, settings = _settings(client)
    assert settings.num_ctx == TRAINED
    _generate(client, num_ctx=200_000)  # capped to the same: the same engine
    assert _settings(client)[0] is runner


def test_num_batch_is_capped_at_num_ctx_without_a_reload(client: Client) -> None:
    _generate(client, num_ctx=256, num_batch=4096)
    runner, settings = _settings(client)
    assert (settings.num_ctx, settings.num_batch) == (256, 256)
    _generate(client, num_ctx=256, num_batch=8192)
    assert _settings(client)[0] is runner


def test_an_automatic_context_steps_down_until_the_model_fits(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """As in Ollama: the default num_ctx by memory (here the tier for 48 GiB accelerators)
    steps down to 32768, then 4096, when a load would not fit; asked for, it does not."""
    from vllama import memory

    scheduler = client.app.state.vllama.scheduler
    monkeypatch.setattr(scheduler, "settings", dataclasses.replace(scheduler.settings, context_length=None))
    scheduler.default_num_ctx = 262144
    monkeypatch.setattr(memory, "estimate", lambda model, settings, hardware, backend=None: settings.num_ctx << 20)
    monkeypatch.setattr(memory, "available_bytes", lambda hardware, reclaimable=0: 8 << 30)
    monkeypatch.setattr(type(scheduler), "_load_settings", _uncapped(type(scheduler)._load_settings))
    _generate(client)
    runner, settings = _settings(client)
    assert settings.num_ctx == 4096
    assert client.get("/api/ps").json()["models"][0]["context_length"] == 4096
    _generate(client)  # the same request finds the same engine, not a reload
    assert _settings(client)[0] is runner
    r = client.post("/api/generate", json={"model": "echo", "prompt": "hi", "stream": False, "options": {"num_ctx": 65536}})
    assert r.status_code == 400 and "more system memory" in r.json()["error"]


def _uncapped(load_settings: Any) -> Any:
    """The scheduler's settings without the tiny model's trained-context cap (2048)."""

    def settings(self: Any, model: Any, load: Any, *args: Any, **kwargs: Any) -> Any:
        info = dict(model.info)
        model.info.pop(f"{info.get('general.architecture', '')}.context_length", None)
        try:
            return load_settings(self, model, load, *args, **kwargs)
        finally:
            model.info.update(info)

    return settings
