"""The official ``openai`` client against ``vllama serve`` (echo backend)."""

from __future__ import annotations

import base64
import struct

import openai
import pytest

from vllama.testing.server import ServerProcess


@pytest.fixture(scope="module")
def client(echo_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=echo_server.url + "/v1", api_key="unused")


def test_chat_completion(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi there"}])
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.content == "hi there" and r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == 2 and r.usage.completion_tokens == 2 and r.usage.total_tokens == 4


def test_chat_completion_streaming_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "a b c"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "a b c"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3


def test_chat_max_tokens_and_tools(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "a b c d"}], max_tokens=2)
    assert r.choices[0].message.content == "a b " and r.choices[0].finish_reason == "length"
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    r = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}], tools=tools)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "lookup" and call.function.arguments == '{"text": "x"}'


def test_chat_json_response_format(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}], response_format={"type": "json_object"})
    assert r.choices[0].message.content == '{"echo": "x"}'


def test_completions(client: openai.OpenAI) -> None:
    r = client.completions.create(model="echo", prompt="once upon")
    assert r.object == "text_completion" and r.choices[0].text == "once upon"
    chunks = list(client.completions.create(model="echo", prompt="once upon a", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "once upon a"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    r = client.embeddings.create(model="echo", input=["x y", "z"])
    assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) == 8
    assert abs(sum(v * v for v in r.data[0].embedding) - 1) < 1e-6
    raw = client.embeddings.with_raw_response.create(model="echo", input="x y", encoding_format="base64").http_response.json()
    decoded = struct.unpack("<8f", base64.b64decode(raw["data"][0]["embedding"]))
    assert decoded == pytest.approx(r.data[0].embedding, abs=1e-6)
    r = client.embeddings.create(model="echo", input="x y", dimensions=3)
    assert len(r.data[0].embedding) == 3


def test_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "echo:latest" in ids
    m = client.models.retrieve("echo")
    assert m.id == "echo:latest" and m.owned_by == "library" and m.created > 0
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("missing")
    assert e.value.body["message"] == "model 'missing' not found"


def test_errors_are_openai_shaped(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["type"] == "not_found_error"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="echo", messages=[])
    assert e.value.body["message"] == "[] is too short - 'messages'"


def test_ollama_extras_ride_in_the_body(client: openai.OpenAI, echo_server: ServerProcess) -> None:
    """keep_alive, options and num_ctx as extra body fields, as Ollama's users ask for on /v1."""
    import httpx

    ask = [{"role": "user", "content": "a b c d e"}]
    r = client.chat.completions.create(model="echo", messages=ask, extra_body={"options": {"num_predict": 2, "temperature": 0}})
    assert r.choices[0].message.content == "a b " and r.choices[0].finish_reason == "length"
    r = client.chat.completions.create(model="echo", messages=ask, max_tokens=3, extra_body={"options": {"num_predict": 1}})
    assert r.choices[0].message.content == "a b c ", "the API's own field wins over options"
    client.chat.completions.create(model="echo", messages=ask, extra_body={"num_ctx": 64, "keep_alive": "1h"})
    [loaded] = httpx.get(echo_server.url + "/api/ps").json()["models"]
    assert loaded["context_length"] == 64
    client.completions.create(model="echo", prompt="x", extra_body={"num_ctx": 64, "keep_alive": 0})
    assert httpx.get(echo_server.url + "/api/ps").json()["models"] == []
    with pytest.raises(openai.BadRequestError, match="num_predict"):
        client.chat.completions.create(model="echo", messages=ask, extra_body={"options": {"num_predict": "lots"}})
    with pytest.raises(openai.BadRequestError, match="missing unit"):
        client.embeddings.create(model="echo", input="x", extra_body={"keep_alive": "300"})
