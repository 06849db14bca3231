"""Rerank (/api/rerank, /v1/rerank, /rerank): the Jina / Cohere shape vLLM serves, a reranker
scored by its engine, an embedding model scored by embedding similarity, and clear 400s."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import start_server
from vllama.server import rerank_convert
from vllama.server import rerank_wire as r
from vllama.server.auth import KEEP_ALIVE_ROUTES, READ_ONLY_ROUTES
from vllama.store.describe import RANK_POOLING, describe_directory, describe_gguf
from vllama.testing.gguf import tiny_model
from vllama.testing.server import ServerProcess, create_model
from vllama.types import RerankScores

PATHS = ["/api/rerank", "/v1/rerank", "/rerank"]
QUERY = "what is the capital of France"
DOCUMENTS = ["Berlin is the capital of Germany.", "Paris: what is the capital of France", "Bananas are yellow."]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    weights = tmp_path_factory.mktemp("rerank-weights")
    embedder = tiny_model(weights / "embedder.gguf", arch="bert", template="", **{"bert.pooling_type": 1})
    reranker = tiny_model(weights / "reranker.gguf", arch="bert", template="", **{"bert.pooling_type": RANK_POOLING})
    generator = tiny_model(weights / "generator.gguf")
    server = start_server(tmp_path_factory.mktemp("rerank"))
    try:
        create_model(server.url, "embedder", embedder)
        create_model(server.url, "reranker", reranker, parameters={"backend": "echo-isolated"})
        create_model(server.url, "reranker-plain", reranker, parameters={"backend": "echo-plain"})
        create_model(server.url, "generator", generator)
        yield server
    finally:
        server.stop()


def _rerank(server: ServerProcess, path: str = "/api/rerank", **body: object) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=30)


@pytest.mark.parametrize("path", PATHS)
def test_a_reranker_is_scored_by_its_engine_through_the_worker(server: ServerProcess, path: str) -> None:
    r = _rerank(server, path, model="reranker", query=QUERY, documents=DOCUMENTS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "reranker" and body["id"].startswith("rerank-")
    assert body["scoring"] == "cross-encoder"
    assert [x["index"] for x in body["results"]] == [1, 0, 2]
    assert [x["document"]["text"] for x in body["results"]] == [DOCUMENTS[1], DOCUMENTS[0], DOCUMENTS[2]]
    scores = [x["relevance_score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == 1.0
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] > 0


def test_an_embedding_model_is_scored_by_the_similarity_of_embeddings(server: ServerProcess) -> None:
    # The echo engine's embeddings are hashes of the text: only the same text is similar.
    documents = ["Bananas are yellow.", QUERY, "the capital of France is Paris"]
    body = _rerank(server, model="embedder", query=QUERY, documents=documents).json()
    assert body["scoring"] == "embedding-similarity"
    assert body["results"][0]["index"] == 1
    assert body["results"][0]["relevance_score"] == pytest.approx(1.0)
    assert all(-1.0 <= x["relevance_score"] <= 1.0 for x in body["results"])
    assert body["usage"]["prompt_tokens"] > 0


def test_top_n_return_documents_and_document_objects(server: ServerProcess) -> None:
    documents = [{"text": d} for d in DOCUMENTS]
    body = _rerank(server, "/v1/rerank", model="reranker", query=QUERY, documents=documents, top_n=2, return_documents=False).json()
    assert body["results"] == [
        {"index": 1, "relevance_score": 1.0},
        {"index": 0, "relevance_score": body["results"][1]["relevance_score"]},
    ]
    # top_n 0 is vLLM's "all of them", and so is a top_n beyond the documents.
    assert len(_rerank(server, model="reranker", query=QUERY, documents=DOCUMENTS, top_n=0).json()["results"]) == 3
    assert len(_rerank(server, model="reranker", query=QUERY, documents=DOCUMENTS, top_n=9).json()["results"]) == 3


BAD = [
    ({"model": "reranker", "query": QUERY, "documents": []}, "documents must hold at least one document"),
    ({"model": "reranker", "query": QUERY}, "documents must hold at least one document"),
    ({"model": "reranker", "query": "", "documents": DOCUMENTS}, "query is required"),
    ({"model": "reranker", "query": QUERY, "documents": ["a", ""]}, "documents[1] is empty"),
    ({"model": "reranker", "query": QUERY, "documents": DOCUMENTS, "top_n": -1}, "top_n must not be negative"),
    ({"model": "reranker", "query": QUERY, "documents": [5]}, "Expected `str | object`"),
    ({"model": "generator", "query": QUERY, "documents": DOCUMENTS}, "does not support rerank: use a reranker or an embedding model"),
    ({"model": "reranker-plain", "query": QUERY, "documents": DOCUMENTS}, "does not support rerank with the echo-plain backend"),
    ({"model": "embedder", "query": QUERY, "documents": DOCUMENTS, "truncate": False, "options": {"num_ctx": 2}}, "context length"),
]


@pytest.mark.parametrize(("body", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_requests_are_clear_400s(server: ServerProcess, body: dict[str, object], message: str) -> None:
    r = _rerank(server, **body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]
    v1 = _rerank(server, "/v1/rerank", **body)
    assert v1.status_code == 400 and message in v1.json()["error"]["message"]


def test_a_reranker_does_not_embed(server: ServerProcess) -> None:
    r = httpx.post(server.url + "/api/embed", json={"model": "reranker", "input": "x"})
    assert r.status_code == 400 and "is a reranker and does not support embeddings" in r.json()["error"]


def test_the_routes_are_in_the_openapi_schema(server: ServerProcess) -> None:
    paths = httpx.get(server.url + "/openapi/openapi.json").json()["paths"]
    assert {"/api/rerank", "/v1/rerank", "/rerank"} <= set(paths)


def test_an_unknown_model_is_a_404(server: ServerProcess) -> None:
    assert _rerank(server, model="nope", query=QUERY, documents=DOCUMENTS).status_code == 404


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    scores=st.lists(st.floats(min_value=-1, max_value=1), min_size=1, max_size=12),
    top_n=st.none() | st.integers(min_value=0, max_value=15),
    return_documents=st.booleans(),
)
def test_results_are_every_document_once_by_score(scores: list[float], top_n: int | None, return_documents: bool) -> None:
    documents = [f"doc {i}" for i in range(len(scores))]
    body = r.RerankBody(model="m", query="q", documents=list(documents), top_n=top_n, return_documents=return_documents)
    out = rerank_convert.response(body, documents, RerankScores(scores=scores, prompt_tokens=3))
    assert len(out.results) == (min(top_n, len(scores)) if top_n else len(scores))
    assert len({x.index for x in out.results}) == len(out.results)
    assert [x.relevance_score for x in out.results] == sorted(scores, reverse=True)[: len(out.results)]
    for x in out.results:
        assert x.relevance_score == scores[x.index]
        assert (x.document == r.Document(text=documents[x.index])) if return_documents else x.document is None


def test_the_routes_are_open_to_read_only_keys() -> None:
    for path in PATHS:
        assert any(method == "POST" and pattern.fullmatch(path) for method, pattern in READ_ONLY_ROUTES)
        assert path in KEEP_ALIVE_ROUTES  # a read-only key may not unload or pin a model through them


def _model_dir(path: Path, config: dict[str, object]) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "bert", **config}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    return path


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"architectures": ["BertForSequenceClassification"], "id2label": {"0": "LABEL_0"}}, "rerank"),
        ({"architectures": ["XLMRobertaForSequenceClassification"]}, "rerank"),
        ({"architectures": ["BertForSequenceClassification"], "id2label": {"0": "negative", "1": "positive"}}, "completion"),
        ({"architectures": ["BertModel"]}, "embedding"),
    ],
)
def test_a_one_label_classifier_directory_is_a_reranker(tmp_path: Path, config: dict[str, object], kind: str) -> None:
    assert describe_directory(_model_dir(tmp_path / "m", config)).capabilities == [kind]


@pytest.mark.parametrize(
    ("metadata", "kind"),
    [
        ({"bert.pooling_type": RANK_POOLING}, "rerank"),
        ({"bert.classifier.output_labels": ["LABEL_0"]}, "rerank"),
        ({"bert.classifier.output_labels": ["negative", "positive"]}, "embedding"),
        ({"bert.pooling_type": 1}, "embedding"),
    ],
)
def test_a_rank_pooling_or_one_label_gguf_is_a_reranker(tmp_path: Path, metadata: dict[str, object], kind: str) -> None:
    assert describe_gguf(tiny_model(tmp_path / "m.gguf", arch="bert", template="", **metadata)).capabilities == [kind]
