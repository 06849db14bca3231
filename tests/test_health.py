"""Health checks: /health for the server, /health/MODEL and /api/ps for each model's readiness
(ready, loading, failed with its error, unloaded)."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from litestar.testing import TestClient

from vllama.config import Settings
from vllama.core import Vllama
from vllama.engine import Engine
from vllama.errors import EngineError
from vllama.hookspecs import hookimpl
from vllama.plugins import make_plugin_manager
from vllama.scheduler import MAX_FAILURES
from vllama.server.app import create_app
from vllama.testing.echo import EchoBackend
from vllama.testing.gguf import tiny_model
from vllama.types import Hardware, LoadSettings, ModelRef

Client = TestClient[Any]


class BrokenBackend(EchoBackend):
    """Fails every load, as an engine does when its weights will not load."""

    name: ClassVar[str] = "broken"
    isolated: ClassVar[bool] = False

    @classmethod
    async def load(cls, model: ModelRef, hardware: Hardware, settings: LoadSettings) -> Engine:
        raise EngineError(f"failed to load model {model.name}: broken on purpose")


@hookimpl
def register_backends(register: Any) -> None:
    register(BrokenBackend)


@pytest.fixture
def client(tmp_path: pytest.TempPathFactory) -> Iterator[Client]:
    pm = make_plugin_manager(load_entrypoints=False, modules=["vllama.testing.echo"])
    pm.register(sys.modules[__name__])
    weights = tiny_model(tmp_path / "tiny.gguf").read_bytes()
    digest = "sha256:" + hashlib.sha256(weights).hexdigest()
    with TestClient(create_app(Vllama(Settings(models_dir=tmp_path / "models"), pm=pm))) as c:
        assert c.post(f"/api/blobs/{digest}", content=weights).status_code == 201
        for name, backend in (("good", "echo"), ("bad", "broken")):
            body = {"model": name, "files": {"tiny.gguf": digest}, "parameters": {"backend": backend}, "stream": False}
            assert c.post("/api/create", json=body).status_code == 200
        yield c


def test_the_server_answers_health_without_a_key(tmp_path: pytest.TempPathFactory) -> None:
    app = create_app(Vllama(Settings(models_dir=tmp_path / "models", api_keys=("k",)), pm=make_plugin_manager(load_entrypoints=False)))
    with TestClient(app) as c:
        assert c.get("/health").json() == {"status": "ok"} and c.head("/health").status_code == 200
        assert c.get("/health/good").status_code == 401


def test_a_model_is_unloaded_then_ready(client: Client) -> None:
    r = client.get("/health/good")
    assert r.status_code == 503 and r.json() == {"model": "good:latest", "status": "unloaded"}
    assert client.post("/api/generate", json={"model": "good", "prompt": "hi", "stream": False}).status_code == 200
    r = client.get("/health/good")
    assert r.status_code == 200 and r.json() == {"model": "good:latest", "status": "ready"}
    [model] = client.get("/api/ps").json()["models"]
    assert model["status"] == "ready" and model["error"] == ""


def test_a_failed_load_is_reported_until_a_load_succeeds_or_the_model_goes(client: Client) -> None:
    r = client.post("/api/generate", json={"model": "bad", "prompt": "hi", "stream": False})
    assert r.status_code == 500 and "broken on purpose" in r.json()["error"]
    r = client.get("/health/bad")
    assert r.status_code == 503
    assert r.json() == {"model": "bad:latest", "status": "failed", "error": "failed to load model bad:latest: broken on purpose"}
    [model] = client.get("/api/ps").json()["models"]
    assert (model["name"], model["status"], model["backend"]) == ("bad:latest", "failed", "broken")
    assert "broken on purpose" in model["error"]
    assert client.request("DELETE", "/api/delete", json={"model": "bad"}).status_code == 200
    assert client.get("/api/ps").json()["models"] == []
    assert client.get("/health/bad").status_code == 404


def test_failures_are_remembered_for_a_bounded_number_of_models(client: Client) -> None:
    scheduler = client.app.state.vllama.scheduler
    for i in range(MAX_FAILURES + 10):
        scheduler._failed(ModelRef(name=f"m{i}:latest", format="gguf", path="x"), BrokenBackend, EngineError("no"))
    assert len(scheduler.failures) == MAX_FAILURES and "m0:latest" not in scheduler.failures
    assert scheduler.readiness(f"m{MAX_FAILURES + 9}:latest") == ("failed", "no")


def test_an_unknown_model_is_a_404(client: Client) -> None:
    r = client.get("/health/nope")
    assert r.status_code == 404 and r.json() == {"error": "model 'nope' not found"}
