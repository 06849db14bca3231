"""API keys: every route of the real app but the ``GET /`` heartbeat needs one when keys are set,
in either header form; read-only keys run inference only; keys stay out of logs; the CLI sends
one from its environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from vllama.config import Settings
from vllama.core import Vllama
from vllama.plugins import make_plugin_manager
from vllama.server.app import create_app
from vllama.server.auth import READ_ONLY_ROUTES, Access, Keys, manages_models, presented_keys
from vllama.testing.server import ServerProcess, wait_for

Client = TestClient[Any]
KEYS = ("first-key", "second-key")
READ_ONLY = "inference-only"
ECHO_ENV = {"VLLAMA_PLUGINS": "none", "VLLAMA_PLUGIN_MODULES": "vllama.testing.echo"}
VLLAMA = str(Path(sys.executable).with_name("vllama"))


def keyed_app(tmp: Path) -> Litestar:
    pm = make_plugin_manager(load_entrypoints=False, modules=["vllama.testing.echo"])
    settings = Settings(models_dir=tmp / "models", api_keys=KEYS, read_only_api_keys=(READ_ONLY,))
    return create_app(Vllama(settings, pm=pm))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Litestar:
    return keyed_app(tmp_path_factory.mktemp("auth"))


@pytest.fixture(scope="module")
def client(app: Litestar) -> Iterator[Client]:
    with TestClient(app) as c:
        yield c


def calls(app: Litestar) -> list[tuple[str, str]]:
    """Every (method, path) the app routes, path parameters filled in; OPTIONS is CORS's."""
    out = []
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            path = re.sub(r"\{[^}]+\}", "x", route.path)
            out += [
                (method, path)
                for method in sorted(route.methods)
                if method != "OPTIONS" and not (path == "/" and method in ("GET", "HEAD"))
            ]
    return out


def read_only_may(method: str, path: str) -> bool:
    return any(method == m and p.fullmatch(path) for m, p in READ_ONLY_ROUTES)


def test_the_route_table_is_walked_whole(app: Litestar) -> None:
    walked = set(calls(app))
    assert {
        ("DELETE", "/api/delete"),
        ("POST", "/api/create"),
        ("HEAD", "/api/blobs/x"),
        ("GET", "/metrics"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/openapi/openapi.json"),
    } <= walked


def test_every_route_but_the_heartbeats_needs_a_key(app: Litestar, client: Client) -> None:
    for method, path in calls(app):
        if path == "/health":
            continue
        r = client.request(method, path)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"
        if method != "HEAD":
            error = r.json()["error"]
            if path.startswith("/v1/messages"):  # Anthropic's error format
                assert r.json()["type"] == "error" and error["type"] == "authentication_error", (path, error)
            elif path.startswith("/v1/"):
                assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key", (path, error)
            else:
                assert error == "unauthorized: an API key is required", (path, error)
    assert client.get("/").text == "Ollama is running" and client.head("/").status_code == 200
    assert client.get("/health").json() == {"status": "ok"} and client.head("/health").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer first-key"},
        {"authorization": "bearer second-key"},
        {"x-api-key": "first-key"},
        {"x-api-key": "second-key"},
    ],
)
def test_every_route_accepts_each_key_in_either_header(app: Litestar, client: Client, headers: dict[str, str]) -> None:
    for method, path in calls(app):
        r = client.request(method, path, headers=headers)
        assert r.status_code != 401, (method, path, r.text)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": "first-key"},
        {"Authorization": "Basic first-key"},
        {"x-api-key": "first-key-but-longer"},
        {"x-api-key": "FIRST-KEY"},
        {"Authorization": "Bearer "},
    ],
)
def test_a_wrong_key_is_401_in_each_routes_error_format(client: Client, headers: dict[str, str]) -> None:
    native = client.get("/api/tags", headers=headers)
    assert native.status_code == 401 and native.json()["error"].startswith("unauthorized")
    openai = client.get("/v1/models", headers=headers)
    assert openai.status_code == 401
    assert openai.json()["error"] | {"message": ""} == {
        "message": "",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }


def test_a_wrong_key_beside_a_right_one_still_passes(client: Client) -> None:
    assert client.get("/api/tags", headers={"Authorization": "Bearer wrong", "x-api-key": "second-key"}).status_code == 200


def test_preflights_need_no_key_and_401s_carry_cors_headers(client: Client) -> None:
    preflight = client.options("/api/chat", headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and "x-api-key" in preflight.headers["access-control-allow-headers"]
    refused = client.get("/api/tags", headers={"Origin": "http://localhost:3000"})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert client.options("/api/tags").status_code != 401


def test_the_read_only_key_runs_inference_and_reads_but_manages_nothing(app: Litestar, client: Client) -> None:
    headers = {"x-api-key": READ_ONLY}
    for method, path in calls(app):
        r = client.request(method, path, headers=headers)
        if read_only_may(method, path):
            assert r.status_code not in (401, 403), (method, path, r.text)
        else:
            assert r.status_code == 403, (method, path, r.status_code)
            if method != "HEAD":
                assert r.json()["error"] == "forbidden: this API key is read-only"
    for method, path in (
        ("POST", "/api/create"),
        ("POST", "/api/pull"),
        ("POST", "/api/copy"),
        ("DELETE", "/api/delete"),
        ("POST", "/api/blobs/x"),
        ("HEAD", "/api/blobs/x"),
    ):
        assert not read_only_may(method, path)
    for method, path in (
        ("POST", "/api/generate"),
        ("POST", "/api/chat"),
        ("POST", "/api/embed"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/api/tags"),
        ("POST", "/api/show"),
        ("GET", "/api/ps"),
        ("GET", "/api/version"),
    ):
        assert read_only_may(method, path)


@pytest.mark.parametrize("keep_alive", [0, "0s", "0m", -1, "-5m", 0.0])
def test_the_read_only_key_cannot_unload_or_pin_with_keep_alive(client: Client, keep_alive: object) -> None:
    for path in ("/api/generate", "/api/chat", "/api/embed", "/api/embeddings"):
        r = client.post(path, json={"model": "missing", "keep_alive": keep_alive}, headers={"x-api-key": READ_ONLY})
        assert r.status_code == 403 and "keep_alive" in r.json()["error"], (path, r.text)
        full = client.post(path, json={"model": "missing", "keep_alive": keep_alive}, headers={"x-api-key": KEYS[0]})
        assert full.status_code == 404, (path, full.text)


def test_the_read_only_key_reaches_the_route_with_the_body_intact(client: Client) -> None:
    r = client.post("/api/generate", json={"model": "missing", "prompt": "hi", "keep_alive": "5m"}, headers={"x-api-key": READ_ONLY})
    assert (r.status_code, r.json()) == (404, {"error": "model 'missing' not found"})
    bad = client.post("/api/chat", content=b"{not json", headers={"x-api-key": READ_ONLY})
    assert bad.status_code == 400 and bad.json()["error"].startswith("invalid JSON")


@given(st.one_of(st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6, allow_nan=False)))
def test_manages_models_is_keep_alive_at_most_zero(seconds: float) -> None:
    assert manages_models(f'{{"keep_alive": {seconds!r}}}'.encode()) == (seconds <= 0)


@pytest.mark.parametrize("body", [b"", b"[]", b"{", b'{"keep_alive": "soon"}', b'{"keep_alive": true}', b'{"prompt": "hi"}'])
def test_manages_models_leaves_other_bodies_to_the_route(body: bytes) -> None:
    assert not manages_models(body)


@given(
    st.lists(
        st.text(st.characters(codec="ascii", exclude_characters=",\r\n"), min_size=1, max_size=8), min_size=1, max_size=4, unique=True
    ),
    st.text(st.characters(codec="ascii"), max_size=8),
)
def test_keys_grant_exactly_the_configured_ones(keys: list[str], other: str) -> None:
    full, read_only = keys[: len(keys) // 2 + 1], keys[len(keys) // 2 + 1 :]
    table = Keys.of(full, read_only)
    for key in full:
        assert table.access([key.encode()]) is Access.FULL
    for key in read_only:
        assert table.access([key.encode()]) is Access.READ_ONLY
        assert table.access([key.encode(), full[0].encode()]) is Access.FULL
    if other not in keys:
        assert table.access([other.encode()]) is Access.NONE


def test_presented_keys_reads_both_headers() -> None:
    headers = [(b"authorization", b"Bearer  abc "), (b"x-api-key", b"def"), (b"authorization", b"Basic zzz"), (b"x-api-key", b" ")]
    assert presented_keys(headers) == [b"abc", b"def"]


def test_settings_read_comma_separated_keys_and_never_show_them() -> None:
    settings = Settings.from_env({"VLLAMA_API_KEY": " first-key, second-key ,", "VLLAMA_API_KEY_READONLY": READ_ONLY})
    assert settings.api_keys == KEYS and settings.read_only_api_keys == (READ_ONLY,)
    assert not any(k in repr(settings) for k in (*KEYS, READ_ONLY))
    assert Settings.from_env({"OLLAMA_API_KEY": "x"}).api_keys == ()
    assert not Settings.from_env({}).api_keys


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.2", False),
        ("box.example", False),
    ],
)
def test_loopback_is_this_machine_only(host: str, loopback: bool) -> None:
    assert Settings(host=host).loopback is loopback


# -- a real server and the CLI ---------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {**ECHO_ENV, "VLLAMA_API_KEY": ",".join(KEYS), "VLLAMA_API_KEY_READONLY": READ_ONLY}
    with ServerProcess(tmp_path_factory.mktemp("keyed") / "models", env, args=("--log-level", "info")).start() as server:
        yield server


def cli(server: ServerProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("VLLAMA_API_KEY", "OLLAMA_API_KEY")}
    return subprocess.run(
        [VLLAMA, *args], capture_output=True, text=True, timeout=60, env={**base, "VLLAMA_HOST": f"127.0.0.1:{server.port}", **env}
    )


def test_the_cli_sends_the_key_from_its_environment(keyed_server: ServerProcess) -> None:
    refused = cli(keyed_server, "list")
    assert refused.returncode != 0 and "unauthorized" in refused.stderr
    for env in ({"VLLAMA_API_KEY": "second-key"}, {"VLLAMA_API_KEY": "first-key,second-key"}, {"OLLAMA_API_KEY": "first-key"}):
        listed = cli(keyed_server, "list", **env)
        assert listed.returncode == 0 and listed.stdout.split() == ["NAME", "ID", "SIZE", "MODIFIED"], (env, listed.stderr)
    assert cli(keyed_server, "ps", VLLAMA_API_KEY=READ_ONLY).returncode == 0
    pulled = cli(keyed_server, "pull", "some/model", VLLAMA_API_KEY=READ_ONLY)
    assert pulled.returncode != 0 and "read-only" in pulled.stderr
    version = cli(keyed_server, "version", VLLAMA_API_KEY="first-key")
    assert version.stdout.startswith("vllama version is"), version.stdout


def test_keys_stay_out_of_the_log(keyed_server: ServerProcess) -> None:
    for headers in ({"Authorization": "Bearer first-key"}, {"x-api-key": READ_ONLY}, {"x-api-key": "not-a-key"}):
        httpx.post(keyed_server.url + "/api/show", json={"model": "missing"}, headers=headers)
    # the access line is written once the response has gone: wait for the last one
    assert wait_for(lambda: "POST /api/show 401" in keyed_server.log()), keyed_server.log()
    log = keyed_server.log()
    assert "POST /api/show 404" in log
    assert "API keys required: 2 full, 1 read-only" in log
    assert not any(secret in log for secret in (*KEYS, READ_ONLY, "not-a-key"))


def test_serve_warns_when_bound_beyond_loopback_without_a_key(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "models", ECHO_ENV)
    server.env["VLLAMA_HOST"] = f"0.0.0.0:{server.port}"
    with server:
        assert "bound to 0.0.0.0 with no API key" in server.log()


def test_openai_and_ollama_clients_send_the_key(keyed_server: ServerProcess) -> None:
    import ollama
    import openai

    assert openai.OpenAI(base_url=keyed_server.url + "/v1", api_key="first-key").models.list().data == []
    with pytest.raises(openai.AuthenticationError) as refused:
        openai.OpenAI(base_url=keyed_server.url + "/v1", api_key="wrong").models.list()
    assert refused.value.code == "invalid_api_key"
    assert ollama.Client(host=keyed_server.url, headers={"Authorization": "Bearer second-key"}).list().models == []
    with pytest.raises(ollama.ResponseError) as unauthorized:
        ollama.Client(host=keyed_server.url).list()
    assert unauthorized.value.status_code == 401


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "missing", "messages": [{"role": "user", "content": "x"}]}),
        ("/v1/completions", {"model": "missing", "prompt": "x"}),
        ("/v1/embeddings", {"model": "missing", "input": "x"}),
        ("/v1/messages", {"model": "missing", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
        ("/v1/responses", {"model": "missing", "input": "x"}),
    ],
)
def test_the_read_only_key_cannot_unload_with_keep_alive_on_v1_either(client: Client, path: str, body: dict[str, Any]) -> None:
    r = client.post(path, json=body | {"keep_alive": 0}, headers={"x-api-key": READ_ONLY})
    assert r.status_code == 403 and "keep_alive" in r.text, r.text
    assert client.post(path, json=body | {"keep_alive": "5m"}, headers={"x-api-key": READ_ONLY}).status_code == 404
