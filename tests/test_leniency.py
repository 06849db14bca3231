"""Ollama's leniency and wire fidelity over HTTP (in process, echo backend): unknown fields and
options are ignored with a warning, the model name is echoed as sent, final chunks carry their
durations, and copy and delete answer with an empty body."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from vllama.config import Settings
from vllama.core import Vllama
from vllama.plugins import make_plugin_manager
from vllama.server.app import create_app
from vllama.server.ollama_wire import ChatBody, WireMessage
from vllama.testing.gguf import tiny_model

Client = TestClient[Any]
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One in-process server per module, with the model ``echo`` installed."""
    tmp = tmp_path_factory.mktemp("lenient")
    pm = make_plugin_manager(load_entrypoints=False, modules=["vllama.testing.echo"])
    weights = tiny_model(tmp / "tiny.gguf").read_bytes()
    digest = "sha256:" + hashlib.sha256(weights).hexdigest()
    with TestClient(create_app(Vllama(Settings(models_dir=tmp / "models"), pm=pm))) as c:
        assert c.post(f"/api/blobs/{digest}", content=weights).status_code == 201
        r = c.post("/api/create", json={"model": "echo", "files": {"tiny.gguf": digest}, "stream": False})
        assert r.status_code == 200, r.text
        yield c


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("vllama")]


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line]


# -- unknown fields and options ---------------------------------------------------------------


def test_unknown_openai_fields_are_ignored_with_a_warning(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi", "colour": "red"}], "store": True, "temperature": 0}
    with caplog.at_level("WARNING"):
        r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "hi"
    assert warnings(caplog) == ['ignoring unknown fields "messages[].colour", "store" in /v1/chat/completions']


def test_unknown_fields_and_options_are_ignored_with_one_warning_each(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": "hi", "colour": "red"}],
        "foo": {"x": 1},
        "options": {"bar": 1, "temperature": 0},
        "stream": False,
    }
    with caplog.at_level("WARNING"):
        r = client.post("/api/chat", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["message"]["content"] == "hi"
    assert warnings(caplog) == ['ignoring unknown fields "messages[].colour", "foo" in /api/chat', 'ignoring unknown option "bar"']


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/generate", {"model": "echo", "prompt": "hi", "stream": False}),
        ("POST", "/api/embed", {"model": "echo", "input": "hi"}),
        ("POST", "/api/embeddings", {"model": "echo", "prompt": "hi"}),
        ("POST", "/api/show", {"model": "echo"}),
        ("POST", "/api/create", {"model": "echo2", "from": "echo", "stream": False}),
        ("POST", "/api/copy", {"source": "echo", "destination": "echo3"}),
        ("DELETE", "/api/delete", {"model": "echo3"}),
    ],
)
def test_every_native_body_ignores_unknown_fields(
    client: Client, caplog: pytest.LogCaptureFixture, method: str, path: str, body: dict[str, Any]
) -> None:
    with caplog.at_level("WARNING"):
        r = client.request(method, path, json={**body, "foo": 1})
    assert r.status_code == 200, r.text
    assert f'ignoring unknown field "foo" in {path}' in warnings(caplog)


def test_pull_ignores_unknown_fields(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        r = client.post("/api/pull", json={"model": "", "foo": 1})
    assert r.status_code == 400  # for the empty name, not for the field
    assert 'ignoring unknown field "foo" in /api/pull' in warnings(caplog)


def test_no_warning_for_known_fields(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        r = client.post(
            "/api/chat", json={"model": "echo", "messages": HI, "stream": False, "options": {"temperature": 0}, "keep_alive": "5m"}
        )
    assert r.status_code == 200 and warnings(caplog) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"stream": "yes"}, "Expected `bool | null`, got `str` - at `$.stream`"),
        ({"options": {"temperature": "hot"}}, 'option "temperature" must be of type float'),
        ({"messages": [{"role": "user", "content": 5, "colour": "red"}]}, "Expected `str`, got `int` - at `$.messages[0].content`"),
    ],
)
def test_known_fields_with_bad_values_are_still_400(client: Client, body: dict[str, Any], message: str) -> None:
    r = client.post("/api/chat", json={"model": "echo", "messages": HI, **body})
    assert r.status_code == 400 and r.json() == {"error": message}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(st.text(max_size=10).filter(lambda k: k not in ChatBody.__struct_encode_fields__), json_values, max_size=3),
    st.dictionaries(st.text(max_size=10).filter(lambda k: k not in WireMessage.__struct_encode_fields__), json_values, max_size=2),
    st.dictionaries(st.text(max_size=10), st.none() | st.integers() | st.text(max_size=5), max_size=2),
)
def test_random_unknown_fields_never_make_a_400(
    client: Client, extra: dict[str, Any], in_message: dict[str, Any], options: dict[str, Any]
) -> None:
    options = {k: v for k, v in options.items() if k not in ("temperature", "top_k", "stop", "num_predict", "num_ctx", "seed")}
    body = {"model": "echo", "stream": False, **extra, "messages": [{**HI[0], **in_message}], "options": options}
    r = client.post("/api/chat", json=body)
    assert r.status_code == 200, r.text


# -- wire fidelity ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["echo", "echo:latest"])
def test_native_answers_echo_the_model_name_as_sent(client: Client, name: str) -> None:
    assert client.post("/api/generate", json={"model": name, "prompt": "hi", "stream": False}).json()["model"] == name
    assert {c["model"] for c in lines(client.post("/api/generate", json={"model": name, "prompt": "hi"}).text)} == {name}
    assert client.post("/api/chat", json={"model": name, "messages": HI, "stream": False}).json()["model"] == name
    assert {c["model"] for c in lines(client.post("/api/chat", json={"model": name, "messages": HI}).text)} == {name}
    assert client.post("/api/embed", json={"model": name, "input": "hi"}).json()["model"] == name
    assert client.post("/api/embed", json={"model": name, "input": ""}).json()["model"] == name
    assert client.post("/api/generate", json={"model": name}).json()["model"] == name
    assert client.post("/api/chat", json={"model": name, "messages": []}).json()["model"] == name


@pytest.mark.parametrize("name", ["echo", "echo:latest"])
def test_openai_answers_echo_the_model_name_as_sent(client: Client, name: str) -> None:
    assert client.post("/v1/chat/completions", json={"model": name, "messages": HI}).json()["model"] == name
    assert client.post("/v1/completions", json={"model": name, "prompt": "hi"}).json()["model"] == name
    assert client.post("/v1/embeddings", json={"model": name, "input": "hi"}).json()["model"] == name
    events = client.post("/v1/chat/completions", json={"model": name, "messages": HI, "stream": True}).text.split("\n\n")
    chunks = [json.loads(e.removeprefix("data: ")) for e in events if e.startswith("data: {")]
    assert chunks and {c["model"] for c in chunks} == {name}


def test_unload_echoes_the_name_and_ps_keeps_the_full_name(client: Client) -> None:
    client.post("/api/generate", json={"model": "echo", "prompt": "hi", "stream": False})
    assert [m["name"] for m in client.get("/api/ps").json()["models"]] == ["echo:latest"]
    r = client.post("/api/generate", json={"model": "echo", "keep_alive": 0}).json()
    assert (r["model"], r["done_reason"]) == ("echo", "unload")


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("path", "body"), [("/api/generate", {"prompt": "hi"}), ("/api/chat", {"messages": HI}), ("/api/chat", {"messages": []})]
)
def test_final_chunks_carry_both_durations(client: Client, path: str, body: dict[str, Any], stream: bool) -> None:
    client.post("/api/generate", json={"model": "echo"})  # loaded: the load takes no time
    chunks = lines(client.post(path, json={"model": "echo", "stream": stream, **body}).text)
    *partial, final = chunks
    assert final["done"] is True and final["load_duration"] == 0 and final["total_duration"] > 0
    assert bool(partial) == (stream and body != {"messages": []})
    for chunk in partial:
        assert chunk["done"] is False and "load_duration" not in chunk and "total_duration" not in chunk


def test_copy_and_delete_answer_with_an_empty_body(client: Client) -> None:
    r = client.post("/api/copy", json={"source": "echo", "destination": "copied"})
    assert (r.status_code, r.content) == (200, b"")
    r = client.request("DELETE", "/api/delete", json={"model": "copied"})
    assert (r.status_code, r.content) == (200, b"")
