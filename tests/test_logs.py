"""One log format: text or JSON lines, a request id on each line of a request and in its
``X-Request-ID``, an access line per request that can be switched off, DEBUG from the environment."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from litestar import get
from litestar.testing import TestClient

from vllama import hookimpl, logs
from vllama.config import Settings
from vllama.core import Vllama
from vllama.plugins import make_plugin_manager
from vllama.server.app import create_app
from vllama.testing.server import ServerProcess


@get("/log-something", media_type="text/plain")
async def log_something() -> str:
    logs.note_model("echo")
    logging.getLogger("vllama.test").info("inside the request")
    return "ok"


class RoutesPlugin:
    @hookimpl
    def register_routes(self, register) -> None:
        register(log_something)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, setup = root.level, logs.setup()
    uvicorn = {name: (logging.getLogger(name).level, logging.getLogger(name).propagate) for name in logs.UVICORN_LOGGERS}
    yield
    if logs._handler is not None:
        root.removeHandler(logs._handler)
        logs._handler = None
    root.setLevel(level)
    logs._setup.update(setup)
    for name, (lvl, propagate) in uvicorn.items():
        logging.getLogger(name).setLevel(lvl)
        logging.getLogger(name).propagate = propagate


def serve_app(tmp_path: Path, *, access_log: bool = True) -> logs.RequestLog:
    pm = make_plugin_manager(load_entrypoints=False, modules=["vllama.testing.echo"])
    pm.register(RoutesPlugin())
    return logs.RequestLog(create_app(Vllama(Settings(models_dir=tmp_path / "models"), pm=pm)), access_log=access_log)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_message_and_request_id() -> None:
    out = io.StringIO()
    logs.configure(json_lines=True, stream=out)
    log = logging.getLogger("vllama.scheduler")
    log.info("outside %s", "a request")
    token = logs.current.set(logs.RequestInfo("req-1"))
    try:
        log.warning("inside")
    finally:
        logs.current.reset(token)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second, third = lines(out)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO" and first["logger"] == "vllama.scheduler" and first["message"] == "outside a request"
    assert first["time"].endswith("Z") and first["time"][10] == "T" and len(first["time"]) == 24
    assert second["request_id"] == "req-1" and second["level"] == "WARNING"
    assert "ValueError: boom" in third["exception"]


def test_text_lines_have_a_timestamp_and_uvicorns_use_the_same_handler() -> None:
    out = io.StringIO()
    logs.configure(stream=out)
    logging.getLogger("uvicorn.error").info("Started server process")
    token = logs.current.set(logs.RequestInfo("req-2", model="echo"))
    try:
        logging.getLogger("vllama").info("hello")
    finally:
        logs.current.reset(token)
    uvicorn, vllama = out.getvalue().splitlines()
    assert uvicorn.endswith("Z INFO uvicorn.error: Started server process")
    assert vllama.endswith("Z INFO vllama: hello model=echo request_id=req-2")


def test_the_request_id_is_answered_and_on_each_line_of_the_request(tmp_path: Path) -> None:
    out = io.StringIO()
    logs.configure(json_lines=True, stream=out)
    with TestClient(serve_app(tmp_path)) as client:
        given = client.get("/log-something", headers={"X-Request-ID": "abc-123"})
        made = client.get("/api/version")
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32
    records = [r for r in lines(out) if r.get("request_id") in ("abc-123", made.headers["x-request-id"])]
    inside, access, version = records
    assert inside == {**inside, "logger": "vllama.test", "message": "inside the request", "request_id": "abc-123", "model": "echo"}
    assert access["logger"] == "vllama.access" and access["message"].startswith("GET /log-something 200 ")
    assert (access["method"], access["path"], access["status"], access["model"]) == ("GET", "/log-something", 200, "echo")
    assert access["duration_ms"] >= 0
    assert version["path"] == "/api/version" and "model" not in version


def test_a_bad_request_id_is_replaced(tmp_path: Path) -> None:
    logs.configure(stream=io.StringIO())
    with TestClient(serve_app(tmp_path)) as client:
        answer = client.get("/api/version", headers={"X-Request-ID": "no spaces\tor tabs"})
    assert len(answer.headers["x-request-id"]) == 32


def test_no_access_log_means_no_access_line(tmp_path: Path) -> None:
    out = io.StringIO()
    logs.configure(json_lines=True, stream=out)
    with TestClient(serve_app(tmp_path, access_log=False)) as client:
        answer = client.get("/log-something")
    assert answer.headers["x-request-id"]
    assert [r["logger"] for r in lines(out) if "request_id" in r] == ["vllama.test"]


def run_serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    """``vllama serve`` up to starting uvicorn: what it would run uvicorn with."""
    import uvicorn

    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    env = {"VLLAMA_PLUGINS": "none", "VLLAMA_MODELS": str(tmp_path / "models"), **env}
    from vllama.cli import serve  # noqa: F401 - registers the command
    from vllama.cli.main import cli

    result = CliRunner().invoke(cli, ["serve", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return started


@pytest.mark.parametrize("variable", ["VLLAMA_DEBUG", "OLLAMA_DEBUG"])
def test_debug_in_the_environment_sets_the_level(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str) -> None:
    run_serve(monkeypatch, tmp_path, {variable: "1"})
    assert logging.getLogger().level == logging.DEBUG
    run_serve(monkeypatch, tmp_path, {variable: "1"}, "--log-level", "warning")
    assert logging.getLogger().level == logging.WARNING
    run_serve(monkeypatch, tmp_path, {variable: "0"})
    assert logging.getLogger().level == logging.INFO


def test_serve_hands_uvicorn_no_log_config_of_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started = run_serve(monkeypatch, tmp_path, {})
    assert started["log_config"] is None and started["access_log"] is False
    assert isinstance(started["app"], logs.RequestLog) and started["app"].access_log
    assert not run_serve(monkeypatch, tmp_path, {}, "--no-access-log")["app"].access_log
    assert not run_serve(monkeypatch, tmp_path, {"VLLAMA_ACCESS_LOG": "0"})["app"].access_log
    assert logs.setup()["json_lines"] is False
    run_serve(monkeypatch, tmp_path, {"VLLAMA_LOG_FORMAT": "json"})
    assert logs.setup()["json_lines"] is True


def test_settings_read_the_log_variables() -> None:
    assert Settings.from_env({"OLLAMA_DEBUG": "true"}).debug
    assert not Settings.from_env({}).debug and Settings.from_env({}).access_log
    assert not Settings.from_env({"VLLAMA_ACCESS_LOG": "false"}).access_log
    assert Settings.from_env({"VLLAMA_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ValueError, match="VLLAMA_LOG_FORMAT must be one of text, json"):
        Settings.from_env({"VLLAMA_LOG_FORMAT": "xml"})


def test_a_served_request_logs_json_lines_only(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "models", {"VLLAMA_PLUGINS": "none", "VLLAMA_LOG_FORMAT": "json"}, args=("--log-level", "info"))
    with server:
        answer = httpx.get(server.url + "/api/tags", headers={"X-Request-ID": "served-1"})
        assert answer.headers["x-request-id"] == "served-1"
    records = [json.loads(line) for line in server.log().splitlines()]
    assert {"vllama", "uvicorn.error", "vllama.access"} <= {r["logger"] for r in records}
    (access,) = [r for r in records if r.get("request_id") == "served-1"]
    assert (access["method"], access["path"], access["status"]) == ("GET", "/api/tags", 200)
