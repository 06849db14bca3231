"""keep_alive, eviction, per-model parallelism, the queue limit, disconnect cancellation and
engine isolation, all through the API of a real server."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from vllama.testing.server import ServerProcess, create_model, wait_for

WORDS = " ".join(f"w{i}" for i in range(30))


def ps(url: str) -> dict[str, dict]:
    return {m["name"]: m for m in httpx.get(url + "/api/ps").json()["models"]}


def generate(url: str, model: str, prompt: str = "hi", **body: object) -> httpx.Response:
    return httpx.post(url + "/api/generate", json={"model": model, "prompt": prompt, "stream": False, **body}, timeout=60)


def test_keep_alive(tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess]) -> None:
    # Seconds long enough that a loaded machine still sees the model between a reply and /api/ps.
    with echo_server_with(tmp_path, VLLAMA_KEEP_ALIVE="3") as server:
        create_model(server.url, "m", tiny_gguf)
        assert generate(server.url, "m").status_code == 200
        assert "m:latest" in ps(server.url)
        assert wait_for(lambda: "m:latest" not in ps(server.url), 10), "default keep_alive of 3s did not unload"
        generate(server.url, "m", keep_alive=-1)
        assert ps(server.url)["m:latest"]["expires_at"].startswith("2318")
        time.sleep(3.5)
        assert "m:latest" in ps(server.url), "a negative keep_alive must keep the model"
        generate(server.url, "m", keep_alive="4s")
        assert "m:latest" in ps(server.url)
        assert wait_for(lambda: "m:latest" not in ps(server.url), 12)
        generate(server.url, "m", keep_alive=0)
        assert wait_for(lambda: "m:latest" not in ps(server.url), 5), "keep_alive 0 must unload at once"


def test_least_recently_used_model_is_evicted(tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess]) -> None:
    with echo_server_with(tmp_path, VLLAMA_MAX_LOADED_MODELS="2") as server:
        for name in ("a", "b", "c"):
            create_model(server.url, name, tiny_gguf)
        for name in ("a", "b", "a"):
            generate(server.url, name)
        assert set(ps(server.url)) == {"a:latest", "b:latest"}
        generate(server.url, "c")
        assert set(ps(server.url)) == {"a:latest", "c:latest"}


def _stream_in_thread(url: str, model: str, results: list, prompt: str = WORDS) -> threading.Thread:
    def run() -> None:
        r = httpx.post(url + "/api/generate", json={"model": model, "prompt": prompt}, timeout=60)
        results.append((r.status_code, r.text))

    t = threading.Thread(target=run)
    t.start()
    return t


def test_per_model_parallelism_and_queue_visibility(
    tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess]
) -> None:
    with echo_server_with(tmp_path, VLLAMA_NUM_PARALLEL_MODELS="wide=3") as server:
        create_model(server.url, "slow", tiny_gguf, parameters={"echo_delay": 0.05, "num_parallel": 2})
        create_model(server.url, "wide", tiny_gguf, parameters={"echo_delay": 0.05, "num_parallel": 2})
        results: list = []
        threads = [_stream_in_thread(server.url, "slow", results) for _ in range(4)]
        seen = []
        assert wait_for(lambda: seen.append(ps(server.url).get("slow:latest")) or (seen[-1] or {}).get("queued") == 2)
        state = seen[-1]
        assert state["running"] == 2 and state["parallel"] == 2 and state["backend"] == "echo"
        for t in threads:
            t.join()
        assert [status for status, _ in results] == [200] * 4
        generate(server.url, "wide")
        assert ps(server.url)["wide:latest"]["parallel"] == 3, "the per-model setting overrides the Modelfile"


def test_full_queue_answers_503(tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess]) -> None:
    with echo_server_with(tmp_path, VLLAMA_MAX_QUEUE="2") as server:
        create_model(server.url, "slow", tiny_gguf, parameters={"echo_delay": 0.1, "num_parallel": 1})
        generate(server.url, "slow", "")
        results: list = []
        threads = [_stream_in_thread(server.url, "slow", results)]
        assert wait_for(lambda: ps(server.url)["slow:latest"]["running"] == 1)
        threads += [_stream_in_thread(server.url, "slow", results) for _ in range(2)]
        assert wait_for(lambda: ps(server.url)["slow:latest"]["queued"] == 2)
        r = generate(server.url, "slow")
        assert r.status_code == 503
        assert r.json() == {"error": "server busy, please try again.  maximum pending requests exceeded"}
        for t in threads:
            t.join()
        assert [status for status, _ in results] == [200] * 3
        assert generate(server.url, "slow", "ok").json()["response"] == "ok"


def test_disconnect_frees_the_slot_at_once(tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess]) -> None:
    with echo_server_with(tmp_path) as server:
        create_model(server.url, "slow", tiny_gguf, parameters={"echo_delay": 0.2, "num_parallel": 1})
        with httpx.stream("POST", server.url + "/api/generate", json={"model": "slow", "prompt": WORDS, "think": False}, timeout=30) as r:
            lines = r.iter_lines()
            assert json.loads(next(lines))["response"] == "w0 "
            assert ps(server.url)["slow:latest"]["running"] == 1
        # 30 tokens at 0.2 s would hold the slot for 6 s; closing the stream frees it now.
        assert wait_for(lambda: ps(server.url)["slow:latest"]["running"] == 0, 1.5)
        started = time.monotonic()
        assert generate(server.url, "slow", "next one").json()["response"] == "next one"
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/generate", {"prompt": WORDS, "stream": False, "think": False}),
        ("/api/chat", {"messages": [{"role": "user", "content": WORDS}], "stream": False, "think": False}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": WORDS}], "reasoning_effort": "none"}),
    ],
)
def test_a_client_that_hangs_up_on_a_whole_reply_frees_the_slot_at_once(
    tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess], path: str, body: dict
) -> None:
    with echo_server_with(tmp_path) as server:
        create_model(server.url, "slow", tiny_gguf, parameters={"echo_delay": 0.2, "num_parallel": 1})
        generate(server.url, "slow", "")
        with contextlib.suppress(httpx.TimeoutException):  # 30 tokens at 0.2 s: the reply would take 6 s
            httpx.post(server.url + path, json={"model": "slow", **body}, timeout=1)
        assert wait_for(lambda: ps(server.url)["slow:latest"]["running"] == 0, 1.5)


def test_a_queued_client_that_hangs_up_leaves_the_queue_at_once(
    tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess]
) -> None:
    with echo_server_with(tmp_path) as server:
        create_model(server.url, "slow", tiny_gguf, parameters={"echo_delay": 0.2, "num_parallel": 1})
        generate(server.url, "slow", "")
        results: list = []
        running = _stream_in_thread(server.url, "slow", results)  # 30 tokens: 6 s in the slot
        assert wait_for(lambda: ps(server.url)["slow:latest"]["running"] == 1)

        def queued_then_gone() -> None:
            with contextlib.suppress(httpx.TimeoutException):
                httpx.post(server.url + "/api/generate", json={"model": "slow", "prompt": "x"}, timeout=1)

        queued = threading.Thread(target=queued_then_gone)
        queued.start()
        assert wait_for(lambda: ps(server.url)["slow:latest"]["queued"] == 1)
        queued.join()
        # Gone from the queue while the first request still holds the slot, not when it would start.
        assert wait_for(lambda: ps(server.url)["slow:latest"]["queued"] == 0, 1.5)
        assert ps(server.url)["slow:latest"]["running"] == 1
        running.join()
        assert [status for status, _ in results] == [200]


def test_an_engine_crash_is_not_a_server_crash(tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess]) -> None:
    with echo_server_with(tmp_path) as server:
        create_model(server.url, "fragile", tiny_gguf, parameters={"backend": "echo-isolated", "echo_allow_crash": True})
        assert generate(server.url, "fragile", "before").json()["response"] == "before"
        r = generate(server.url, "fragile", "#crash")
        assert r.status_code == 500 and "stopped unexpectedly" in r.json()["error"]
        assert server.alive()
        assert generate(server.url, "fragile", "after").json()["response"] == "after"
        assert ps(server.url)["fragile:latest"]["backend"] == "echo-isolated"


def test_stream_error_mid_way_is_a_final_error_line(
    tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess]
) -> None:
    with echo_server_with(tmp_path) as server:
        create_model(
            server.url, "fragile", tiny_gguf, parameters={"backend": "echo-isolated", "echo_allow_crash": True, "echo_delay": 0.05}
        )
        r = httpx.post(
            server.url + "/api/chat",
            json={"model": "fragile", "think": False, "messages": [{"role": "user", "content": "one two #crash three"}]},
            timeout=30,
        )
        assert r.status_code == 200
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert [line["message"]["content"] for line in lines[:2]] == ["one ", "two "]
        assert "stopped unexpectedly" in lines[-1]["error"] and len(lines) == 3


def test_an_error_in_a_worker_keeps_its_status_at_the_route(
    tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess]
) -> None:
    with echo_server_with(tmp_path) as server:
        create_model(server.url, "small", tiny_gguf, parameters={"backend": "echo-isolated", "num_ctx": 4})
        long = "one two three four five six"
        overflow = {"error": "the input length exceeds the context length"}
        for stream in (True, False):  # before any header, streaming or not
            r = httpx.post(server.url + "/api/generate", json={"model": "small", "prompt": long, "stream": stream}, timeout=60)
            assert (r.status_code, r.json()) == (400, overflow)
        r = httpx.post(server.url + "/api/embed", json={"model": "small", "input": long, "truncate": False}, timeout=60)
        assert (r.status_code, r.json()) == (400, overflow)
        r = httpx.post(
            server.url + "/v1/chat/completions", json={"model": "small", "messages": [{"role": "user", "content": long}]}, timeout=60
        )
        assert r.status_code == 400 and r.json()["error"]["message"] == overflow["error"]
        assert generate(server.url, "small", "fits").json()["response"] == "fits"


@pytest.mark.parametrize(
    ("path", "body"), [("/api/generate", {"prompt": "one two"}), ("/api/chat", {"messages": [{"role": "user", "content": "one two"}]})]
)
def test_the_request_that_loads_reports_the_load_on_its_final_chunk(
    tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess], path: str, body: dict[str, object]
) -> None:
    with echo_server_with(tmp_path) as server:
        create_model(server.url, "m", tiny_gguf, parameters={"backend": "echo-isolated"})
        for loads in (True, False):
            r = httpx.post(server.url + path, json={"model": "m", "think": False, **body}, timeout=60)
            *partial, final = [json.loads(line) for line in r.text.splitlines()]
            assert len(partial) == 2 and all("load_duration" not in chunk for chunk in partial)
            assert final["done"] is True and (final["load_duration"] > 0) == loads
            assert final["total_duration"] >= final["load_duration"]


@pytest.mark.parametrize("origin_env", [{"VLLAMA_ORIGINS": "https://app.example"}, {"OLLAMA_ORIGINS": "https://app.example"}])
def test_origins_setting(tmp_path: Path, origin_env: dict[str, str], echo_server_with: Callable[..., ServerProcess]) -> None:
    with echo_server_with(tmp_path, **origin_env) as server:
        assert httpx.get(server.url + "/api/tags", headers={"Origin": "https://app.example"}).status_code == 200
        assert httpx.get(server.url + "/api/tags", headers={"Origin": "https://other.example"}).status_code == 403
