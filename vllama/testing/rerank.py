"""Rerank checks shared by the engines' end-to-end tests: queries, each with one relevant
document among unrelated ones, and a check that a server ranks that one first."""

from __future__ import annotations

from typing import Any

import httpx

#: (query, documents, index of the relevant document).
CASES: list[tuple[str, list[str], int]] = [
    (
        "How do I bake bread at home?",
        [
            "The stock market fell sharply on Tuesday.",
            "Knead the dough, let it rise for an hour, then bake the loaf in a hot oven.",
            "The Amazon river flows through Brazil.",
            "Cats sleep for most of the day.",
        ],
        1,
    ),
    (
        "What is the capital of France?",
        [
            "Bananas are rich in potassium.",
            "The Pacific is the largest ocean on Earth.",
            "Paris is the capital and largest city of France.",
        ],
        2,
    ),
    (
        "What are the symptoms of the flu?",
        [
            "Influenza causes fever, cough, a sore throat and aching muscles.",
            "The Eiffel Tower was finished in 1889.",
            "A balanced budget requires spending less than you earn.",
            "Basketball is played by two teams of five players.",
        ],
        0,
    ),
    (
        "How do I reverse a list in Python?",
        [
            "The recipe calls for two cups of flour.",
            "Jupiter is the largest planet in the solar system.",
            "Call list.reverse() or take the slice items[::-1] to reverse a Python list.",
            "The train to Berlin leaves at nine.",
            "Roses need plenty of sunlight to bloom.",
        ],
        2,
    ),
    (
        "Which animal is the fastest on land?",
        [
            "The cheetah can run at over a hundred kilometres an hour, faster than any other land animal.",
            "Tea is made by pouring hot water over dried leaves.",
            "The violin has four strings.",
        ],
        0,
    ),
]


def rerank(url: str, model: str, query: str, documents: list[str], *, path: str = "/api/rerank", **fields: Any) -> dict[str, Any]:
    """POST a rerank request and return the response body (raising on an error status)."""
    response = httpx.post(url + path, json={"model": model, "query": query, "documents": documents, **fields}, timeout=300)
    response.raise_for_status()
    return response.json()


def check_relevance(url: str, model: str, *, path: str = "/api/rerank") -> str:
    """Every case's relevant document ranks first; return how the server scored them."""
    scorings = set()
    for query, documents, relevant in CASES:
        body = rerank(url, model, query, documents, path=path)
        ranked = [r["index"] for r in body["results"]]
        assert ranked[0] == relevant, (query, body["results"])
        assert sorted(ranked) == list(range(len(documents)))
        assert body["usage"]["total_tokens"] > 0
        scorings.add(body["scoring"])
    assert len(scorings) == 1, scorings
    return scorings.pop()
