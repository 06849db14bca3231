"""Out-of-range requests against ``vllama serve`` on the real llama.cpp engine: a 400 with
no load, no reload and no memory taken by the loaded worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vllama.memory import total_bytes
from vllama.testing.server import ServerProcess

MODEL = "smollm2:135m"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"VLLAMA_NUM_PARALLEL": "1", "VLLAMA_CONTEXT_LENGTH": "1024"}
    with ServerProcess(tmp_path_factory.mktemp("limits") / "models", env) as server:
        assert httpx.post(server.url + "/api/pull", json={"model": MODEL, "stream": False}, timeout=300).status_code == 200
        yield server


def _worker(server: ServerProcess) -> int:
    """The pid of the engine worker: the server's child started by multiprocessing's spawn."""
    assert server.process is not None
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    workers = [int(p) for p in children if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(workers) == 1, workers
    return workers[0]


def _rss(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def _loaded(server: ServerProcess) -> dict[str, Any]:
    models = httpx.get(server.url + "/api/ps", timeout=10).json()["models"]
    assert [m["model"] for m in models] == [MODEL]
    return models[0]


def _generate(server: ServerProcess, **body: Any) -> httpx.Response:
    return httpx.post(server.url + "/api/generate", json={"model": MODEL, "stream": False, **body}, timeout=120)


@pytest.fixture(scope="module")
def loaded(server: ServerProcess) -> tuple[int, int, dict[str, Any]]:
    """Load the model once; (worker pid, its RSS, its /api/ps entry)."""
    assert _generate(server, prompt="").status_code == 200
    pid = _worker(server)
    return pid, _rss(pid), _loaded(server)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_batch": 10**9}, 'option "num_batch" must be between 1 and 16384, got 1000000000'),
        ({"num_thread": 1000}, 'option "num_thread" must be between 0 and'),
        ({"num_ctx": 10**9}, 'option "num_ctx" must be between 1 and 16777216, got 1000000000'),
        ({"num_gpu": 10**9}, 'option "num_gpu" must be -1 or between 0 and 999'),
        ({"num_gpu": 100}, 'option "num_gpu" must be -1, 999 (all layers) or between 0 and 31'),
        ({"top_p": 7}, 'option "top_p" must be between 0 and 1, got 7.0'),
    ],
)
def test_out_of_range_options_cost_no_load_and_no_memory(
    server: ServerProcess, loaded: tuple[int, int, dict[str, Any]], options: dict[str, Any], message: str
) -> None:
    pid, rss, before = loaded
    r = _generate(server, prompt="Hi", options=options)
    assert r.status_code == 400 and r.json()["error"].startswith(message)
    assert _worker(server) == pid
    assert _loaded(server)["expires_at"] == before["expires_at"]
    assert abs(_rss(pid) - rss) < 16 * 2**20  # the worker allocated nothing for it


def test_the_worker_runs_under_the_memory_limit(loaded: tuple[int, int, dict[str, Any]]) -> None:
    pid, rss, _ = loaded
    limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
    data = next(x for x in limits if x.startswith("Max data size")).split()
    assert int(data[3]) == total_bytes() and rss < total_bytes()


@pytest.mark.parametrize("token", [-1, 49152, 10**6])
def test_out_of_range_context_tokens_are_a_400(server: ServerProcess, loaded: tuple[int, int, dict[str, Any]], token: int) -> None:
    pid, _, _ = loaded
    r = _generate(server, prompt="Hi", context=[1, 2, token])
    assert r.status_code == 400 and r.json()["error"] == f"invalid context: token id {token} is out of range"
    assert _worker(server) == pid


def test_a_returned_context_is_accepted(server: ServerProcess, loaded: tuple[int, int, dict[str, Any]]) -> None:
    first = _generate(server, prompt="Hi", options={"temperature": 0, "num_predict": 4})
    context = first.json()["context"]
    assert context and max(context) < 49152
    again = _generate(server, prompt="More", context=context, options={"temperature": 0, "num_predict": 4})
    assert again.status_code == 200 and again.json()["eval_count"] > 0


def test_a_chat_longer_than_the_context_loses_its_oldest_messages(server: ServerProcess) -> None:
    """As in Ollama: the system prompt and the last message stay, and the reply says how many
    messages were left out; with truncate false, the same chat is a 400."""
    history = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(12):
        history += [
            {"role": "user", "content": f"Tell me fact number {i} about the sea. " * 4},
            {"role": "assistant", "content": f"Fact {i}: the sea is deep and wide and full of fish. " * 3},
        ]
    history.append({"role": "user", "content": "What colour is the sky?"})
    body = {"model": MODEL, "messages": history, "stream": False, "options": {"num_ctx": 256, "num_predict": 8, "temperature": 0}}
    r = httpx.post(server.url + "/api/chat", json=body, timeout=120)
    assert r.status_code == 200, r.text
    reply = r.json()
    assert 0 < reply["truncated_messages"] < len(history) - 1
    assert reply["prompt_eval_count"] <= 256 and reply["message"]["content"]
    refused = httpx.post(server.url + "/api/chat", json=body | {"truncate": False}, timeout=120)
    assert refused.status_code == 400 and "exceeds the context length" in refused.json()["error"]
    short = httpx.post(server.url + "/api/chat", json=body | {"messages": history[-1:]}, timeout=120).json()
    assert "truncated_messages" not in short
