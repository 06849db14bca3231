"""End to end: ``vllama serve`` with the vLLM backend and the official ``ollama`` and ``openai``
clients, on SmolLM2 (safetensors, created from its directory) and all-MiniLM-L6-v2."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import openai
import pytest

from vllama.testing.hf_models import minilm_cross_encoder_dir, minilm_dir, smollm2_safetensors
from vllama.testing.rerank import CASES, check_relevance, rerank
from vllama.testing.server import ServerProcess, create_from_dir, refused_before_load, wait_for

pytestmark = pytest.mark.engine

MODEL = "smollm2-hf"
EMBED = "all-minilm"
#: One engine thread per model: the machines these run on have two cores.
ONE_THREAD = {"num_thread": 1}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # The MiniLM directory has a subfolder (1_Pooling), so it is read from the server's disk.
    env = {"VLLAMA_PLUGINS": "vllm", "VLLAMA_NUM_PARALLEL": "4", "VLLAMA_CONTEXT_LENGTH": "1024", "VLLAMA_CREATE_DIRS": str(minilm_dir())}
    with ServerProcess(tmp_path_factory.mktemp("serve") / "models", env) as server:
        yield server


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=server.url, timeout=300)


def ps(server: ServerProcess) -> dict[str, dict[str, Any]]:
    return {m["name"].removesuffix(":latest"): m for m in httpx.get(server.url + "/api/ps").json()["models"]}


def test_a_model_directory_loads_visibly_and_answers(server: ServerProcess, client: ollama.Client) -> None:
    create_from_dir(server.url, MODEL, smollm2_safetensors(), parameters=ONE_THREAD)
    listed = {m.model.removesuffix(":latest"): m for m in client.list().models}
    assert listed[MODEL].details.format == "safetensors"
    replies: list[Any] = []
    question = [{"role": "user", "content": "What is the capital of France?"}]
    chat = threading.Thread(
        target=lambda: replies.append(client.chat(model=MODEL, messages=question, options={"temperature": 0, "num_predict": 32}))
    )
    chat.start()
    assert wait_for(lambda: ps(server).get(MODEL, {}).get("status") == "loading", 30), "a loading model is listed as loading"
    chat.join(300)
    assert ps(server)[MODEL]["status"] == "ready" and ps(server)[MODEL]["backend"] == "vllm"
    reply = replies[0]
    assert "Paris" in reply.message.content and reply.done_reason == "stop"
    assert reply.load_duration > 0 and reply.eval_count > 0 and reply.prompt_eval_count > 0


def test_show_and_ps_report_the_engine(server: ServerProcess, client: ollama.Client) -> None:
    show = client.show(MODEL)
    assert show.details.format == "safetensors" and show.details.family == "llama"
    info = show.modelinfo
    assert info["llama.context_length"] == 8192 and info["vllm.dtype"] == "float32"
    assert info["vllm.kv_cache_tokens"] >= 1024 * 4 and info["vllm.kv_cache_bytes"] == info["vllm.kv_cache_tokens"] * 46080
    loaded = ps(server)[MODEL]
    assert loaded["context_length"] == 1024 and loaded["parallel"] == 4
    assert loaded["size"] == info["vllm.weights_bytes"] + info["vllm.kv_cache_bytes"] and loaded["size_vram"] == 0


def engine_facts(server: ServerProcess) -> dict[str, Any]:
    return httpx.post(server.url + "/api/show", json={"model": MODEL}).json()["model_info"]


def _stream(url: str, content: str, arrivals: list, index: int, stop_after: int | None = None) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "options": {"temperature": 0, "num_predict": 48}}
    with httpx.stream("POST", url + "/api/chat", json=body, timeout=300) as r:
        for n, line in enumerate(r.iter_lines()):
            arrivals.append((time.monotonic(), index, json.loads(line)["done"]))
            if stop_after is not None and n + 1 >= stop_after:
                return


def test_concurrent_streams_interleave_and_a_closed_one_is_aborted(server: ServerProcess) -> None:
    arrivals: list = []
    threads = [
        threading.Thread(target=_stream, args=(server.url, f"Write about {t}.", arrivals, i)) for i, t in enumerate(["the sea", "the moon"])
    ]
    for t in threads:
        t.start()
    _stream(server.url, "Write a long story about a dog.", arrivals, 2, stop_after=3)
    assert wait_for(lambda: ps(server)[MODEL]["running"] <= 2, 5), "the closed stream's request is gone"
    assert wait_for(lambda: engine_facts(server)["vllm.num_requests_running"] <= 2, 5), "and vLLM aborted it"
    for t in threads:
        t.join()
    first_done = min(t for t, _, done in arrivals if done)
    assert {i for t, i, done in arrivals if t < first_done and not done} == {0, 1, 2}
    assert not any(i == 2 and done for _, i, done in arrivals)


def test_openai_client_and_vllms_own_metrics(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=32, temperature=0
    )
    assert "Paris" in reply.choices[0].message.content
    full = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=24, temperature=0, extra_body={"ignore_eos": True}
    )
    assert full.usage.completion_tokens == 24 and full.choices[0].finish_reason == "length"
    chunks = list(
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Count to five."}], max_tokens=16, stream=True)
    )
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    text = httpx.get(server.url + "/metrics").text
    generated = re.search(r'vllama_engine_info\{key="vllm\.generation_tokens_total",model="smollm2-hf[^"]*"\} (\S+)', text)
    assert generated and float(generated.group(1)) >= 24
    assert re.search(r'vllama_engine_info\{key="vllm\.kv_cache_usage_perc",model="smollm2-hf[^"]*"\} ', text)


def test_embeddings_on_minilm_match_sentence_transformers(client: ollama.Client, server: ServerProcess) -> None:
    client.create(model=EMBED, from_=str(minilm_dir()), parameters=ONE_THREAD)  # a server path: VLLAMA_CREATE_DIRS
    texts = ["The sky is blue.", "Bananas are yellow."]
    vectors = client.embed(model=EMBED, input=texts).embeddings
    assert [len(v) for v in vectors] == [384, 384]
    assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-4
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_dir()), device="cpu").encode(texts, normalize_embeddings=True)
    for ours, theirs in zip(vectors, reference, strict=True):
        assert sum(a * b for a, b in zip(ours, theirs.tolist(), strict=True)) > 0.999
    assert len(client.embeddings(model=EMBED, prompt="The sky is blue.").embedding) == 384
    openai_vectors = openai.OpenAI(base_url=server.url + "/v1", api_key="unused").embeddings.create(model=EMBED, input=texts)
    assert [len(d.embedding) for d in openai_vectors.data] == [384, 384]
    with pytest.raises(ollama.ResponseError) as e:
        client.embed(model=MODEL, input="hello")
    assert e.value.status_code == 400 and "does not support embeddings" in e.value.error


def test_rerank_on_minilm_ranks_the_relevant_document_first(client: ollama.Client, server: ServerProcess) -> None:
    client.create(model=EMBED, from_=str(minilm_dir()), parameters=ONE_THREAD)
    for path in ("/api/rerank", "/v1/rerank", "/rerank"):
        assert check_relevance(server.url, EMBED, path=path) == "embedding-similarity"


def test_a_cross_encoder_is_scored_by_vllm_as_transformers_scores_it(server: ServerProcess) -> None:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    create_from_dir(server.url, "minilm-ce", minilm_cross_encoder_dir(), parameters=ONE_THREAD)
    query, documents, _ = CASES[0]
    body = rerank(server.url, "minilm-ce", query, documents)
    assert body["scoring"] == "cross-encoder"
    got = {r["index"]: r["relevance_score"] for r in body["results"]}
    directory = str(minilm_cross_encoder_dir())
    tokenizer, model = AutoTokenizer.from_pretrained(directory), BertForSequenceClassification.from_pretrained(directory).eval()
    with torch.no_grad():
        pairs = tokenizer([query] * len(documents), documents, return_tensors="pt", padding=True)
        want = torch.sigmoid(model(**pairs).logits[:, 0]).tolist()  # vLLM's activation for one label
    assert [got[i] for i in range(len(documents))] == pytest.approx(want, abs=1e-2)
    assert body["usage"]["prompt_tokens"] == int(pairs["attention_mask"].sum())
    long = "word " * 600  # past MiniLM's 512 positions: cut to fit, or refused
    assert rerank(server.url, "minilm-ce", query, [long, documents[0]])["usage"]["prompt_tokens"] > 512
    for fields in ({"documents": [long], "truncate": False}, {"query": long, "documents": ["d"]}):
        refused = httpx.post(server.url + "/api/rerank", json={"model": "minilm-ce", "query": query, **fields}, timeout=60)
        assert refused.status_code == 400 and "exceeds the context length" in refused.json()["error"], refused.text


def test_bad_input_is_a_clear_ollama_error(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model=MODEL, prompt="hello " * 3000)
    assert e.value.status_code == 400 and "exceeds the context length" in e.value.error
    client.create(model="tight", from_=MODEL, parameters={"num_ctx": 8192, "kv_cache_memory_bytes": 64 << 20})
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model="tight", prompt="hello")
    assert e.value.status_code == 500 and "does not fit" in e.value.error and "lower num_ctx" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:  # a bad engine setting is refused at create
        client.create(model="greedy", from_=MODEL, parameters={"gpu_memory_utilization": 2})
    assert e.value.status_code == 400 and "Expected `float` <= 1.0" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:  # and in a request, before any load
        client.generate(model=MODEL, prompt="hello", options={"gpu_memory_utilization": 2})
    assert e.value.status_code == 400 and "Expected `float` <= 1.0" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model=MODEL, prompt="hello", options={"typical_p": 0.5})
    assert e.value.status_code == 400 and "typical_p" in e.value.error


def test_a_template_without_tools_is_not_listed_and_refused_before_any_load(server: ServerProcess, client: ollama.Client) -> None:
    template = "{% for m in messages %}{{ m.content }}{% endfor %}"  # renders no tools
    create_from_dir(server.url, "smol-tools", smollm2_safetensors(), template=template, parameters=ONE_THREAD)
    assert "tools" not in (client.show("smol-tools").capabilities or [])
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f"}}]}
    assert "does not support tools" in refused_before_load(server.url, "smol-tools", "/v1/chat/completions", body)
