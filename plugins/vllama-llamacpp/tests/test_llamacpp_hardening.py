"""``vllama serve`` on llama.cpp under abuse: a 150-client disconnect storm, queue overflow and
``kill -9`` of the engine mid-stream, on the real starter model."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vllama.testing.hf_models import smollm2_gguf
from vllama.testing.server import ServerProcess, create_model, wait_for

MODEL = "smol"
#: Long enough that every stream is still running when the test acts on it.
LONG = {"model": MODEL, "prompt": "Count from 1 to 1000, separated by commas.", "options": {"temperature": 0, "num_predict": 2000}}


def ps(url: str) -> dict[str, Any]:
    models = httpx.get(url + "/api/ps", timeout=30).json()["models"]
    return {m["name"]: m for m in models}.get(f"{MODEL}:latest", {"running": 0, "queued": 0})


def answers(url: str) -> str:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "stream": False,
        "options": {"temperature": 0, "num_predict": 16},
    }
    response = httpx.post(url + "/api/chat", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()["message"]["content"]


def serve(tmp_path: Path, **env: str) -> ServerProcess:
    server = ServerProcess(tmp_path / "models", {"VLLAMA_PLUGINS": "llamacpp", **env}).start()
    create_model(server.url, MODEL, smollm2_gguf(), parameters={"num_parallel": 2, "num_thread": 1})
    assert answers(server.url)  # loaded
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = serve(tmp_path_factory.mktemp("hardening"))
    yield server
    server.stop()


def test_disconnect_storm_frees_every_slot(server: ServerProcess) -> None:
    workers = server.worker_pids()
    rng = random.Random(150)
    waits = [rng.uniform(0, 0.5) for _ in range(150)]

    async def client(http: httpx.AsyncClient, wait: float) -> None:
        try:
            async with asyncio.timeout(wait):
                async with http.stream("POST", "/api/generate", json=LONG) as response:
                    async for _ in response.aiter_lines():
                        pass
        except TimeoutError:
            pass  # hung up mid-request, before or after the first token

    async def storm() -> None:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http:
            await asyncio.gather(*(client(http, wait) for wait in waits))

    asyncio.run(storm())
    assert wait_for(lambda: ps(server.url)["running"] == ps(server.url)["queued"] == 0, timeout=30), {
        k: ps(server.url)[k] for k in ("running", "queued")
    }
    assert server.alive() and server.worker_pids() == workers
    assert answers(server.url)


def test_engine_killed_mid_stream_ends_the_stream_with_an_error_and_reloads(server: ServerProcess) -> None:
    (worker,) = server.worker_pids()
    with httpx.stream("POST", server.url + "/api/generate", json=LONG, timeout=120) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert "response" in json.loads(next(lines))
        os.kill(worker, signal.SIGKILL)
        rest = [json.loads(line) for line in lines]
    assert rest and "stopped unexpectedly" in rest[-1]["error"]
    assert all("error" not in line for line in rest[:-1])
    assert server.alive()
    assert answers(server.url)
    assert len(server.worker_pids()) == 1 and server.worker_pids() != [worker]


def test_queue_overflow_is_exact(tmp_path: Path) -> None:
    server = serve(tmp_path, VLLAMA_MAX_QUEUE="3")
    results: list[int] = []
    release = threading.Event()

    def hold() -> None:
        with httpx.stream("POST", server.url + "/api/generate", json=LONG, timeout=120) as response:
            results.append(response.status_code)
            release.wait(60)

    threads = [threading.Thread(target=hold) for _ in range(5)]
    try:
        for t in threads:
            t.start()
        assert wait_for(lambda: (ps(server.url)["running"], ps(server.url)["queued"]) == (2, 3), timeout=60), ps(server.url)
        refused = [httpx.post(server.url + "/api/generate", json=LONG, timeout=30) for _ in range(3)]
        assert [r.status_code for r in refused] == [503] * 3
        assert refused[0].json() == {"error": "server busy, please try again.  maximum pending requests exceeded"}
        openai = httpx.post(server.url + "/v1/completions", json={"model": MODEL, "prompt": "x"}, timeout=30)
        assert openai.status_code == 503 and isinstance(openai.json()["error"]["message"], str)
    finally:
        release.set()
        for t in threads:
            t.join()
    try:
        assert results == [200] * 5  # the two running, then the three queued once slots freed
        assert wait_for(lambda: ps(server.url)["running"] == ps(server.url)["queued"] == 0, timeout=30)
        assert answers(server.url)
    finally:
        server.stop()
