"""Rerank and batched embeddings on llama.cpp with real models: all-MiniLM-L6-v2 as a GGUF (a
plain embedder, scored by embedding similarity) and a MiniLM cross-encoder (rank pooling)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import httpx
import pytest

from vllama.errors import ContextOverflow
from vllama.testing.hf_models import minilm_cross_encoder_dir, minilm_cross_encoder_gguf, minilm_dir, minilm_gguf, smollm2_gguf
from vllama.testing.rerank import CASES, check_relevance, rerank
from vllama.testing.server import ServerProcess, create_model
from vllama.types import EmbedRequest, Hardware, LoadSettings, ModelRef, RerankRequest
from vllama_llamacpp.engine import LlamaCppEngine

from .conftest import load

ONE_THREAD = {"num_thread": 1}
SETTINGS = LoadSettings(num_ctx=512, num_thread=1)


@pytest.fixture(scope="module")
def minilm(hardware: Hardware) -> Iterator[LlamaCppEngine]:
    engine = load(ModelRef(name="all-minilm", format="gguf", path=str(minilm_gguf()), capabilities=["embedding"]), hardware, SETTINGS)
    yield engine
    asyncio.run(engine.close())


@pytest.fixture(scope="module")
def cross_encoder(hardware: Hardware) -> Iterator[LlamaCppEngine]:
    ref = ModelRef(name="minilm-ce", format="gguf", path=str(minilm_cross_encoder_gguf()), capabilities=["rerank"])
    engine = load(ref, hardware, SETTINGS)
    yield engine
    asyncio.run(engine.close())


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(_unit(a), _unit(b), strict=True))


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


async def test_batched_embeddings_are_those_of_each_input_alone(minilm: LlamaCppEngine) -> None:
    # More inputs than one decode pools, of varied lengths: they decode in a few batches.
    texts = [f"sentence number {i} " + "about a topic " * (i % 7) for i in range(150)]
    together = await minilm.embed(EmbedRequest(inputs=texts))
    alone = [(await minilm.embed(EmbedRequest(inputs=[t]))).vectors[0] for t in texts[::37]]
    for got, want in zip(together.vectors[::37], alone, strict=True):  # the same up to f16 rounding
        assert _cosine(got, want) > 0.99999
        assert math.dist(got, want) < 1e-2 * math.hypot(*want)
    assert together.prompt_tokens == sum([(await minilm.embed(EmbedRequest(inputs=[t]))).prompt_tokens for t in texts])


async def test_minilm_embeddings_match_sentence_transformers(minilm: LlamaCppEngine) -> None:
    from sentence_transformers import SentenceTransformer

    texts = [CASES[0][0], *CASES[0][1]]
    reference = SentenceTransformer(str(minilm_dir()), device="cpu").encode(texts, normalize_embeddings=True)
    got = (await minilm.embed(EmbedRequest(inputs=texts))).vectors
    for vector, want in zip(got, reference, strict=True):
        assert sum(a * b for a, b in zip(_unit(vector), want.tolist(), strict=True)) > 0.999


async def test_the_cross_encoder_scores_pairs_as_transformers_does(cross_encoder: LlamaCppEngine) -> None:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    query, documents, _ = CASES[1]
    got = await cross_encoder.rerank(RerankRequest(query=query, documents=documents))
    directory = str(minilm_cross_encoder_dir())
    tokenizer, model = AutoTokenizer.from_pretrained(directory), BertForSequenceClassification.from_pretrained(directory).eval()
    with torch.no_grad():
        pairs = tokenizer([query] * len(documents), documents, return_tensors="pt", padding=True)
        # llama.cpp's converter drops BERT's pooler: its rank pooling is the classifier on the
        # first token's hidden state.
        want = model.classifier(model.bert(**pairs).last_hidden_state[:, 0])[:, 0].tolist()
    assert got.scoring == "cross-encoder" and got.prompt_tokens == int(pairs["attention_mask"].sum())
    assert got.scores == pytest.approx(want, rel=5e-3)
    assert len(set(got.scores)) == len(documents)


async def test_a_pair_longer_than_the_context_is_cut_or_refused(cross_encoder: LlamaCppEngine) -> None:
    long = "word " * 600
    cut = await cross_encoder.rerank(RerankRequest(query="a query", documents=[long, "short"]))
    assert cut.prompt_tokens == 512 + len(cross_encoder._embedder._pair("a query", "short"))
    with pytest.raises(ContextOverflow):
        await cross_encoder.rerank(RerankRequest(query="a query", documents=[long], truncate=False))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("rerank") / "models", {"VLLAMA_PLUGINS": "llamacpp"}) as server:
        create_model(server.url, "all-minilm", minilm_gguf(), parameters=ONE_THREAD)
        create_model(server.url, "minilm-ce", minilm_cross_encoder_gguf(), parameters=ONE_THREAD)
        create_model(server.url, "smollm2", smollm2_gguf(), parameters=ONE_THREAD)
        yield server


@pytest.mark.parametrize("path", ["/api/rerank", "/v1/rerank"])
def test_the_relevant_document_ranks_first_with_minilm(server: ServerProcess, path: str) -> None:
    assert check_relevance(server.url, "all-minilm", path=path) == "embedding-similarity"


def test_a_reranker_gguf_is_scored_by_rank_pooling(server: ServerProcess) -> None:
    query, documents, _ = CASES[0]
    body = rerank(server.url, "minilm-ce", query, documents, top_n=2)
    assert body["scoring"] == "cross-encoder" and len(body["results"]) == 2
    show = httpx.post(server.url + "/api/show", json={"model": "minilm-ce"}).json()
    assert show["capabilities"] == ["rerank"]


def test_a_generative_model_is_refused(server: ServerProcess) -> None:
    r = httpx.post(server.url + "/api/rerank", json={"model": "smollm2", "query": "q", "documents": ["d"]})
    assert r.status_code == 400 and "does not support rerank" in r.json()["error"]
