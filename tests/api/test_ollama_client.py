"""The official ``ollama`` Python client, every method, against ``vllama serve`` (echo backend)."""

from __future__ import annotations

from pathlib import Path

import ollama
import pytest

from vllama.testing.server import ServerProcess


@pytest.fixture(scope="module")
def client(echo_server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=echo_server.url)


def test_version(echo_server: ServerProcess) -> None:
    """This client has no version method; its CLI and others GET /api/version."""
    import httpx

    major, minor, patch = (int(x) for x in httpx.get(echo_server.url + "/api/version").json()["version"].split("."))
    assert (major, minor, patch) >= (0, 6, 4)


def test_generate_not_streaming(client: ollama.Client) -> None:
    r = client.generate(model="echo", prompt="the sky is blue", stream=False)
    assert r.response == "the sky is blue"
    assert r.done and r.done_reason == "stop"
    assert r.prompt_eval_count == 4 and r.eval_count == 4
    assert r.total_duration >= r.eval_duration > 0
    assert r.context and len(r.context) == 8


def test_generate_streaming(client: ollama.Client) -> None:
    chunks = list(client.generate(model="echo", prompt="one two three", stream=True, think=False))
    assert [c.response for c in chunks[:-1]] == ["one ", "two ", "three"]
    assert chunks[-1].done and chunks[-1].response == "" and chunks[-1].eval_count == 3
    assert all(not c.done for c in chunks[:-1])


def test_generate_options_reach_the_engine(client: ollama.Client) -> None:
    r = client.generate(model="echo", prompt="a b c d e f", options={"num_predict": 2})
    assert r.response == "a b " and r.done_reason == "length"
    r = client.generate(model="echo", prompt="a b STOP c", options={"stop": ["STOP"]})
    assert r.response == "a b "


def test_chat(client: ollama.Client) -> None:
    r = client.chat(model="echo", messages=[{"role": "user", "content": "hello there"}])
    assert r.message.role == "assistant" and r.message.content == "hello there"
    assert r.done_reason == "stop" and r.eval_count == 2


def test_chat_streaming_with_thinking_and_tools(client: ollama.Client) -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    chunks = list(client.chat(model="echo", messages=[{"role": "user", "content": "add"}], tools=[add], think=True, stream=True))
    thinking = "".join(c.message.thinking or "" for c in chunks)
    calls = [call for c in chunks for call in (c.message.tool_calls or [])]
    assert thinking.startswith("The user said")
    assert calls[0].function.name == "add" and calls[0].function.arguments == {"text": "add"}
    assert chunks[-1].done


def test_chat_format_json(client: ollama.Client) -> None:
    import json

    r = client.chat(model="echo", messages=[{"role": "user", "content": "hi"}], format="json")
    assert json.loads(r.message.content) == {"echo": "hi"}


def test_embed_is_normalised_and_honours_dimensions(client: ollama.Client) -> None:
    r = client.embed(model="echo", input=["first text", "second text"])
    assert len(r.embeddings) == 2 and all(len(v) == 8 for v in r.embeddings)
    assert all(abs(sum(x * x for x in v) - 1) < 1e-6 for v in r.embeddings)
    assert r.embeddings[0] != r.embeddings[1]
    short = client.embed(model="echo", input="first text", dimensions=4).embeddings[0]
    assert len(short) == 4 and abs(sum(x * x for x in short) - 1) < 1e-6


def test_embeddings_legacy_is_not_normalised(client: ollama.Client) -> None:
    vec = client.embeddings(model="echo", prompt="first text").embedding
    assert len(vec) == 8 and abs(sum(x * x for x in vec) - 1) > 1e-3


def test_list_show_copy_delete(client: ollama.Client) -> None:
    names = [m.model for m in client.list().models]
    assert "echo:latest" in names
    show = client.show("echo")
    assert show.details.format == "gguf" and show.details.family == "llama"
    assert show.modelinfo["general.architecture"] == "llama"
    assert "completion" in show.capabilities and "tools" in show.capabilities
    client.copy("echo", "echo-copy:v1")
    assert "echo-copy:v1" in [m.model for m in client.list().models]
    assert client.generate(model="echo-copy:v1", prompt="copied").response == "copied"
    client.delete("echo-copy:v1")
    assert "echo-copy:v1" not in [m.model for m in client.list().models]
    with pytest.raises(ollama.ResponseError) as e:
        client.delete("echo-copy:v1")
    assert e.value.status_code == 404


def test_create_blob_and_create_with_parameters(client: ollama.Client, tiny_gguf: Path) -> None:
    digest = client.create_blob(tiny_gguf)
    assert digest.startswith("sha256:")
    progress = list(
        client.create(model="terse", files={"tiny.gguf": digest}, system="Be terse.", parameters={"num_predict": 1}, stream=True)
    )
    assert progress[-1].status == "success"
    assert client.generate(model="terse", prompt="many words here").response == "many "
    show = client.show("terse")
    assert 'SYSTEM """Be terse."""' in show.modelfile and "num_predict" in show.parameters
    client.create(model="terse2", from_="terse", system="Other.")
    assert "Other." in client.show("terse2").modelfile
    assert client.generate(model="terse2", prompt="many words here").response == "many "


def test_ps_shows_the_loaded_model(client: ollama.Client) -> None:
    client.generate(model="echo", prompt="load me")
    models = {m.model: m for m in client.ps().models}
    assert "echo:latest" in models
    assert models["echo:latest"].context_length > 0


def test_load_and_unload_with_empty_prompt(client: ollama.Client) -> None:
    r = client.generate(model="echo", prompt="")
    assert r.done_reason == "load"
    r = client.generate(model="echo", prompt="", keep_alive=0)
    assert r.done_reason == "unload"
    assert "echo:latest" not in [m.model for m in client.ps().models]
    r = client.chat(model="echo", messages=[])
    assert r.done_reason == "load"


def test_unknown_model_is_404_with_ollamas_message(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model="nope", prompt="x")
    assert e.value.status_code == 404 and e.value.error == "model 'nope' not found"
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model="Nope:Tag", messages=[{"role": "user", "content": "x"}])
    assert e.value.error == "model 'Nope:Tag' not found"


def test_pull_of_an_unknown_model_says_why(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as e:
        client.pull("library/unknown-model")  # from Ollama's registry, which the tests' servers cannot reach
    assert e.value.error.startswith("pull model manifest: cannot reach the registry at") and "unknown-model:latest" in e.value.error


def test_large_blobs_upload(client: ollama.Client, tmp_path: Path) -> None:
    """Model files are gigabytes: uploads are streamed to disk with no body size limit."""
    import hashlib
    import os

    data = os.urandom(24 * 1024 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert client.create_blob(path) == "sha256:" + hashlib.sha256(data).hexdigest()
