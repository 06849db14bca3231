"""End to end: the official ``ollama`` client and ``vllama serve`` on the real starter model,
with every installed plugin loaded as a user's server would."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from prometheus_client.parser import text_string_to_metric_families

from vllama.testing.gguf import tiny_model
from vllama.testing.server import ServerProcess, create_model

MODEL = "smollm2:135m"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("serve") / "models", {"VLLAMA_NUM_PARALLEL": "4"}) as server:
        yield server


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=server.url)


def test_starter_model_installs_offline_and_answers(client: ollama.Client) -> None:
    progress = [p.status for p in client.pull(MODEL, stream=True)]
    assert progress[-1] == "success"
    assert MODEL in [m.model for m in client.list().models]
    reply = client.chat(
        model=MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}], options={"temperature": 0, "num_predict": 32}
    )
    assert "Paris" in reply.message.content
    assert reply.done_reason == "stop" and reply.eval_count > 0 and reply.prompt_eval_count > 0


def test_show_and_ps_report_the_gguf(client: ollama.Client) -> None:
    show = client.show(MODEL)
    assert show.details.quantization_level == "Q4_1" and show.details.parameter_size == "134.52M"
    assert show.modelinfo["llama.context_length"] == 8192 and show.modelinfo["general.parameter_count"] == 134515008
    assert "<|im_start|>" in show.template
    client.generate(model=MODEL, prompt="")
    loaded = {m.model: m for m in client.ps().models}[MODEL]
    assert loaded.size > 98_000_000 and loaded.context_length == 4096


def test_embeddings_have_the_models_dimension(client: ollama.Client) -> None:
    embed = client.embed(model=MODEL, input=["The sky is blue.", "Grass is green."])
    assert [len(v) for v in embed.embeddings] == [576, 576]
    assert abs(sum(x * x for x in embed.embeddings[0]) - 1) < 1e-4
    assert embed.embeddings[0] != embed.embeddings[1]
    assert len(client.embeddings(model=MODEL, prompt="The sky is blue.").embedding) == 576


def _stream(url: str, content: str, arrivals: list, index: int, stop_after: int | None = None) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "options": {"temperature": 0, "num_predict": 40}}
    with httpx.stream("POST", url + "/api/chat", json=body, timeout=120) as r:
        for n, line in enumerate(r.iter_lines()):
            chunk = json.loads(line)
            arrivals.append((time.monotonic(), index, chunk["done"]))
            if stop_after is not None and n + 1 >= stop_after:
                return


def test_concurrent_chats_run_together(server: ServerProcess) -> None:
    arrivals: list = []
    topics = ["the sea", "mountains", "the moon", "forests"]
    threads = [threading.Thread(target=_stream, args=(server.url, f"Write about {t}.", arrivals, i)) for i, t in enumerate(topics)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first_done = min(t for t, _, done in arrivals if done)
    progressed = {i for t, i, done in arrivals if t < first_done and not done}
    assert progressed == set(range(len(topics))), "every stream produced tokens before any stream finished"


def test_cancelling_one_stream_frees_its_slot(server: ServerProcess) -> None:
    arrivals: list = []
    other = threading.Thread(target=_stream, args=(server.url, "Write a long story about a cat.", arrivals, 1))
    other.start()
    _stream(server.url, "Write a long story about a dog.", arrivals, 0, stop_after=3)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        running = {m["name"]: m for m in httpx.get(server.url + "/api/ps").json()["models"]}[MODEL]["running"]
        if running <= 1:
            break
        time.sleep(0.05)
    assert running <= 1, "the closed stream's slot is free while the other runs"
    other.join()
    assert any(i == 1 and done for _, i, done in arrivals), "the other stream ran to its end"


def test_bad_gguf_input_is_a_clear_error(server: ServerProcess, client: ollama.Client, tmp_path: Path) -> None:
    weights = tmp_path / "truncated.gguf"
    from vllama_llamacpp.starter import starter_path

    source = starter_path()
    assert source is not None
    weights.write_bytes(source.read_bytes()[:50_000_000])
    with pytest.raises(RuntimeError, match="truncated"):
        create_model(server.url, "truncated", weights)
    (tmp_path / "text.gguf").write_text("not a model")
    with pytest.raises(RuntimeError, match="not a GGUF file"):
        create_model(server.url, "text", tmp_path / "text.gguf")
    create_model(server.url, "alien", tiny_model(tmp_path / "alien.gguf", arch="no-such-architecture"))
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model="alien", prompt="hello")
    assert e.value.status_code == 500 and "no-such-architecture" in e.value.error
    long_prompt = "hello " * 5000
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model=MODEL, prompt=long_prompt)
    assert e.value.status_code == 400 and "exceeds the context length" in e.value.error
    assert client.chat(model=MODEL, messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 4}).done


def test_ignore_eos_generates_exactly_max_tokens(server: ServerProcess) -> None:
    """vLLM's ignore_eos on the OpenAI routes: benchmarks compare servers on equal work."""
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    short = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=48, temperature=0)
    assert short.usage.completion_tokens < 48 and short.choices[0].finish_reason == "stop"
    full = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=48, temperature=0, extra_body={"ignore_eos": True}
    )
    assert full.usage.completion_tokens == 48 and full.choices[0].finish_reason == "length"


def test_serve_model_preloads_the_starter(tmp_path: Path) -> None:
    """``vllama serve --model smollm2:135m``: loaded before the first request, which then has no load delay."""
    from vllama.testing.server import wait_for

    with ServerProcess(tmp_path / "models", args=("--model", MODEL)) as server:
        assert wait_for(
            lambda: any(m["name"] == MODEL and m["status"] == "ready" for m in httpx.get(server.url + "/api/ps").json()["models"]), 60
        )
        reply = ollama.Client(host=server.url).chat(model=MODEL, messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 4})
        assert not reply.load_duration
        assert {m.model: m for m in ollama.Client(host=server.url).ps().models}[MODEL].expires_at.year > 2200


def test_create_from_a_library_name_pulls_it_first(tmp_path: Path) -> None:
    """``vllama create -f Modelfile`` with ``FROM smollm2:135m`` on a store that lacks it."""
    import os
    import subprocess
    import sys

    (tmp_path / "Modelfile").write_text(f"FROM {MODEL}\nPARAMETER temperature 0.1\nSYSTEM Answer briefly.\n")
    with ServerProcess(tmp_path / "models") as server:
        env = {**os.environ, "VLLAMA_HOST": server.url}
        done = subprocess.run(
            [sys.executable, "-m", "vllama", "create", "brief", "-f", str(tmp_path / "Modelfile")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        names = [m["name"] for m in httpx.get(server.url + "/api/tags").json()["models"]]
        assert {MODEL, "brief:latest"} <= set(names)
        show = httpx.post(server.url + "/api/show", json={"model": "brief"}).json()
        assert show["system"] == "Answer briefly." and "temperature" in show["parameters"]


def test_vllama_run_answers_with_the_starter_on_a_fresh_store(tmp_path: Path) -> None:
    """``vllama run smollm2:135m`` with no hub and an empty store pulls the starter; a greedy
    copy of it (temperature 0, a fixed seed) answers the same words every time."""
    import os
    import subprocess
    import sys

    (tmp_path / "Modelfile").write_text(f"FROM {MODEL}\nPARAMETER temperature 0\nPARAMETER seed 42\nPARAMETER num_predict 64\n")
    with ServerProcess(tmp_path / "models") as server:
        env = {**os.environ, "VLLAMA_HOST": server.url, "HF_HUB_OFFLINE": "1"}

        def vllama(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "vllama", *args], env=env, input="", capture_output=True, text=True, timeout=180)

        loaded = vllama("run", MODEL)  # no prompt and empty stdin: pull, then load
        assert loaded.returncode == 0 and loaded.stdout == "", loaded.stderr
        assert MODEL in [m["name"] for m in httpx.get(server.url + "/api/tags").json()["models"]]
        created = vllama("create", "greedy", "-f", str(tmp_path / "Modelfile"))
        assert created.returncode == 0, created.stderr
        done = vllama("run", "greedy", "Why is the sky blue?")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("The sky appears blue because of a process called Rayleigh scattering.")


def _prefix_cache_counters(server: ServerProcess) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics").text
    return {
        sample.name.removeprefix("vllama_prefix_cache_"): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("vllama_prefix_cache_") and sample.labels.get("model") == MODEL
    }


def test_prefix_cache_counters_move_in_metrics_and_ps(client: ollama.Client, server: ServerProcess) -> None:
    system = "You answer questions about tide pools, briefly and kindly. " * 10
    client.chat(model=MODEL, messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 1})
    before = _prefix_cache_counters(server)
    for question in ("What lives in a tide pool?", "When is low tide?"):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        reply = client.chat(model=MODEL, messages=messages, options={"temperature": 0, "num_predict": 4})
    after = _prefix_cache_counters(server)
    assert after["hits_total"] >= before["hits_total"] + 1
    assert after["tokens_saved_total"] - before["tokens_saved_total"] >= reply.prompt_eval_count - 20 > 80
    assert after["budget_bytes"] == 1024 << 20
    ps = httpx.get(f"{server.url}/api/ps").json()["models"]
    cache = {m["name"]: m for m in ps}[MODEL]["prefix_cache"]
    assert cache["hits"] == after["hits_total"] and cache["tokens_saved"] == after["tokens_saved_total"]
