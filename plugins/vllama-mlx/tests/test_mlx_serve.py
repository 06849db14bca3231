"""End to end: ``vllama serve`` with the MLX backend, the official ``ollama`` and ``openai``
clients, and SmolLM2-135M-Instruct in safetensors created from a local directory."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from vllama.testing.server import ServerProcess, refused_before_load

MODEL = "smollm2-st:latest"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def create_from_dir(client: ollama.Client, name: str, directory: Path) -> None:
    """Upload each file of a model directory as a blob and create ``name`` from them."""
    files = {f.name: client.create_blob(f) for f in sorted(directory.iterdir()) if f.is_file()}
    assert client.create(model=name, files=files).status == "success"


@pytest.fixture(scope="module")
def client(server: ServerProcess, smollm2_dir: Path) -> ollama.Client:
    client = ollama.Client(host=server.url, timeout=300)
    create_from_dir(client, MODEL, smollm2_dir)
    return client


def test_ollama_client_chats_with_the_safetensors_model(client: ollama.Client) -> None:
    reply = client.chat(model=MODEL, messages=QUESTION, options={"temperature": 0, "num_predict": 12})
    assert "Paris" in reply.message.content
    assert reply.done_reason == "stop" and reply.eval_count > 0 and reply.prompt_eval_count > 20


def test_show_and_ps_report_the_mlx_engine(client: ollama.Client, server: ServerProcess) -> None:
    show = client.show(MODEL)
    assert show.details.format == "safetensors" and show.details.family == "llama"
    assert show.modelinfo["llama.rope.freq_base"] == 100000.0 and show.modelinfo["llama.context_length"] == 8192
    assert show.modelinfo["mlx.dtype"] == "bfloat16" and show.modelinfo["mlx.model_bytes"] > 260_000_000
    assert "<|im_start|>" in show.template
    (loaded,) = [m for m in httpx.get(server.url + "/api/ps").json()["models"] if m["name"] == MODEL]
    assert loaded["backend"] == "mlx" and loaded["context_length"] == 1024 and loaded["parallel"] == 2
    assert loaded["size"] > 269_000_000 and loaded["size_vram"] == 0


def test_openai_client_streams_the_answer(server: ServerProcess, client: ollama.Client) -> None:
    oai = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    chunks = list(oai.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=12, temperature=0, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text and len(chunks) > 3


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda c: c.embed(model=MODEL, input="hi"), "does not support embeddings with the mlx backend"),
        (lambda c: c.generate(model=MODEL, prompt="hi", options={"typical_p": 0.5}), "typical_p is not supported by the mlx backend"),
        (lambda c: c.generate(model=MODEL, prompt="hello " * 1100), "exceeds the context length"),
    ],
    ids=["embeddings", "typical_p", "context"],
)
def test_what_mlx_cannot_do_is_a_clear_400(client: ollama.Client, call, message: str) -> None:
    with pytest.raises(ollama.ResponseError) as e:
        call(client)
    assert e.value.status_code == 400 and message in e.value.error


def test_a_config_mlx_lm_cannot_read_is_refused_clearly(client: ollama.Client, smollm2_dir: Path, tmp_path: Path) -> None:
    config = json.loads((smollm2_dir / "config.json").read_text())
    config.pop("rope_theta")
    config["rope_parameters"] = {"full_attention": {"rope_theta": 1e5}, "sliding_attention": {"rope_theta": 1e4}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    for f in ("tokenizer.json", "tokenizer_config.json", "model.safetensors"):
        (tmp_path / f).symlink_to(smollm2_dir / f)
    create_from_dir(client, "odd-rope", tmp_path)
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model="odd-rope", prompt="hi", options={"num_predict": 2})
    assert e.value.status_code == 500 and 'add a top-level "rope_theta"' in e.value.error


def test_a_template_without_tools_is_not_listed_and_refused_before_any_load(server: ServerProcess, smollm2_dir: Path) -> None:
    client = ollama.Client(host=server.url, timeout=300)
    files = {f.name: client.create_blob(f) for f in sorted(smollm2_dir.iterdir()) if f.is_file()}
    template = "{% for m in messages %}{{ m.content }}{% endfor %}"  # renders no tools
    client.create(model="smol-tools", files=files, template=template)
    assert "tools" not in (client.show("smol-tools").capabilities or [])
    body = {"messages": QUESTION, "tools": [{"type": "function", "function": {"name": "f"}}]}
    assert "does not support tools" in refused_before_load(server.url, "smol-tools", "/api/chat", body)
