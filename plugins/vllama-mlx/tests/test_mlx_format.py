"""End to end: ``format`` (JSON, JSON schema) on the MLX backend through ``vllama serve`` and the
official ``ollama`` client, on SmolLM2-135M-Instruct in safetensors."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import ollama
import openai
import pytest

from vllama.testing.server import ServerProcess, create_from_dir

MODEL = "smollm2-format:latest"
CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "country": {"type": "string", "maxLength": 24},
        "population": {"type": "integer", "minimum": 0, "maximum": 100000000},
    },
    "required": ["city", "country", "population"],
}
PET = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "species": {"enum": ["cat", "dog", "rabbit"]},
        "vaccinated": {"type": "boolean"},
    },
    "required": ["name", "species", "vaccinated"],
}


@pytest.fixture(scope="module")
def client(server: ServerProcess, smollm2_dir: Path) -> ollama.Client:
    create_from_dir(server.url, MODEL, smollm2_dir)
    return ollama.Client(host=server.url, timeout=600)


def ask(client: ollama.Client, question: str, fmt: Any, **options: Any) -> ollama.ChatResponse:
    messages = [{"role": "user", "content": question}]
    return client.chat(model=MODEL, messages=messages, format=fmt, options={"num_predict": 96, **options})


def test_a_schema_gives_valid_json_on_every_seed(client: ollama.Client) -> None:
    def one(seed: int) -> ollama.ChatResponse:
        return ask(client, "What is the capital of France? Answer in JSON.", CITY, temperature=0.9, seed=seed)

    with ThreadPoolExecutor(2) as pool:  # the server runs two sequences at once
        replies = list(pool.map(one, range(20)))
    texts = [r.message.content for r in replies]
    for reply, text in zip(replies, texts, strict=True):
        assert reply.done_reason == "stop", text
        jsonschema.validate(json.loads(text), CITY)
    assert len(set(texts)) > 1  # the seeds drew different replies


def test_json_gives_an_object(client: ollama.Client) -> None:
    reply = ask(client, "What is the capital of France? Answer in JSON.", "json", temperature=0.8, seed=3)
    assert reply.done_reason == "stop"
    assert isinstance(json.loads(reply.message.content), dict)


def test_two_requests_with_different_schemas_at_once_both_match_their_own(client: ollama.Client) -> None:
    with ThreadPoolExecutor(2) as pool:
        city = pool.submit(ask, client, "Name a big city, in JSON.", CITY, temperature=0)
        pet = pool.submit(ask, client, "Describe my pet, in JSON.", PET, temperature=0.8, seed=7)
        city_reply, pet_reply = city.result(), pet.result()
    jsonschema.validate(json.loads(city_reply.message.content), CITY)
    jsonschema.validate(json.loads(pet_reply.message.content), PET)


def test_generate_with_a_schema_streams_valid_json(client: ollama.Client) -> None:
    parts = client.generate(model=MODEL, prompt="My pet, as JSON:", format=PET, stream=True, options={"temperature": 0, "num_predict": 96})
    chunks = list(parts)
    jsonschema.validate(json.loads("".join(c.response for c in chunks)), PET)
    assert chunks[-1].done and chunks[-1].done_reason == "stop"


def test_openai_response_format_json_schema(server: ServerProcess, client: ollama.Client) -> None:
    oai = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    reply = oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe my pet, in JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "pet", "schema": PET}},
        temperature=0.8,
        seed=11,
        max_tokens=96,
    )
    assert reply.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), PET)


def test_a_schema_llguidance_cannot_compile_is_a_400(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as e:
        ask(client, "Hi", {"type": "object", "properties": {"a": {"type": "frob"}}})
    assert e.value.status_code == 400 and "invalid JSON schema in format" in e.value.error and "frob" in e.value.error
    after = ask(client, "What is the capital of France? Answer in JSON.", CITY, temperature=0)  # the engine serves on
    jsonschema.validate(json.loads(after.message.content), CITY)
