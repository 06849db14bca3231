"""/metrics on a real server: counters move by exactly what known requests cost, gauges show
loaded models and running and queued requests, and each core has its own registry."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from vllama.config import Settings
from vllama.core import Vllama
from vllama.engine import Engine
from vllama.scheduler import Runner
from vllama.server.metrics import SchedulerCollector, metrics_for
from vllama.testing.echo import EchoBackend
from vllama.testing.server import ServerProcess, create_model, wait_for
from vllama.types import EngineInfo, LoadSettings, ModelRef

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(url: str) -> Samples:
    response = httpx.get(url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value (0 when absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_generation_counters(echo_server: ServerProcess) -> None:
    url = echo_server.url
    before = scrape(url)
    for _ in range(2):
        r = httpx.post(url + "/api/generate", json={"model": "echo", "prompt": "one two three", "stream": False})
        assert r.json()["eval_count"] == 3
    after = scrape(url)
    generate = {"route": "/api/generate", "method": "POST"}
    assert delta(before, after, "vllama_http_requests_total", **generate, status="200") == 2
    assert delta(before, after, "vllama_http_request_duration_seconds_count", **generate) == 2
    assert delta(before, after, "vllama_generated_tokens_total", model="echo:latest") == 6
    assert delta(before, after, "vllama_prompt_tokens_total", model="echo:latest") == 6
    assert delta(before, after, "vllama_time_to_first_token_seconds_count", model="echo:latest") == 2
    assert delta(before, after, "vllama_time_per_output_token_seconds_count", model="echo:latest") == 2
    assert value(after, "vllama_models_loaded") >= 1
    assert value(after, "vllama_model_memory_bytes", model="echo:latest", backend="echo") > 0
    assert value(after, "vllama_model_load_duration_seconds_count", model="echo:latest", backend="echo") == 1
    assert value(after, "vllama_requests_running", model="echo:latest") == 0


def test_streaming_openai_counters(echo_server: ServerProcess) -> None:
    url = echo_server.url
    before = scrape(url)
    body = {"model": "echo", "messages": [{"role": "user", "content": "a b c d"}], "stream": True, "max_tokens": 3}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line.startswith("data: {")]
    assert "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or "" for line in lines) == "a b c "
    after = scrape(url)
    assert delta(before, after, "vllama_http_requests_total", route="/v1/chat/completions", method="POST", status="200") == 1
    assert delta(before, after, "vllama_generated_tokens_total", model="echo:latest") == 3
    assert delta(before, after, "vllama_prompt_tokens_total", model="echo:latest") == 4
    assert delta(before, after, "vllama_time_to_first_token_seconds_count", model="echo:latest") == 1


def test_errors_are_counted_by_route_template(echo_server: ServerProcess) -> None:
    url = echo_server.url
    before = scrape(url)
    assert httpx.post(url + "/api/generate", json={"model": "missing", "prompt": "hi"}).status_code == 404
    assert httpx.get(url + "/v1/models/missing").status_code == 404
    assert httpx.post(url + "/api/generate", json={"prompt": "no model"}).status_code == 400
    after = scrape(url)
    assert delta(before, after, "vllama_http_requests_total", route="/api/generate", method="POST", status="404") == 1
    assert delta(before, after, "vllama_http_requests_total", route="/api/generate", method="POST", status="400") == 1
    assert delta(before, after, "vllama_http_requests_total", route="/v1/models/{model}", method="GET", status="404") == 1
    assert not any(dict(labels).get("route") == "/v1/models/missing" for _, labels in after)
    assert delta(before, after, "vllama_generated_tokens_total", model="echo:latest") == 0


def test_running_and_queued_gauges(tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess]) -> None:
    with echo_server_with(tmp_path) as server:
        url = server.url
        create_model(url, "slow", tiny_gguf, parameters={"echo_delay": 0.1, "num_parallel": 1})
        assert value(scrape(url), "vllama_models_loaded") == 0
        words = " ".join(f"w{i}" for i in range(15))
        threads = [
            threading.Thread(
                target=httpx.post, args=(url + "/api/generate",), kwargs={"json": {"model": "slow", "prompt": words}, "timeout": 30}
            )
            for _ in range(2)
        ]
        for t in threads:
            t.start()

        now: Samples = {}

        def busy() -> bool:  # one scrape is one consistent view of the scheduler
            now.clear()
            now.update(scrape(url))
            return (
                value(now, "vllama_requests_running", model="slow:latest") == 1
                and value(now, "vllama_requests_queued", model="slow:latest") == 1
            )

        assert wait_for(busy), now
        assert value(now, "vllama_queue_depth") == 1
        assert value(now, "vllama_models_loaded") == 1
        assert value(now, "vllama_model_parallel", model="slow:latest") == 1
        for t in threads:
            t.join()
        done = scrape(url)
        assert value(done, "vllama_requests_running", model="slow:latest") == 0
        assert value(done, "vllama_queue_depth") == 0
        assert value(done, "vllama_generated_tokens_total", model="slow:latest") == 30
        assert value(done, "vllama_model_load_duration_seconds_count", model="slow:latest", backend="echo") == 1


class ReportingEngine(Engine):
    """An engine that reports runtime facts, for the engine-info gauges."""

    def generate(self, request):
        raise NotImplementedError

    def chat(self, request):
        raise NotImplementedError

    def info(self) -> EngineInfo:
        return EngineInfo(size=1000, size_vram=600, info={"kv_cache_bytes": 4096, "kv_cache_usage": 0.25, "offloaded": True, "kind": "q4"})

    async def close(self) -> None:
        pass


def test_engine_info_gauges() -> None:
    model = ModelRef(name="m:latest", format="gguf", path="/nowhere")
    runner = Runner(
        model=model,
        backend=EchoBackend,
        settings=LoadSettings(parallel=2),
        keep_alive=0,
        slots=asyncio.Semaphore(2),
        engine=ReportingEngine(),
        active=1,
    )
    registry = CollectorRegistry()
    registry.register(SchedulerCollector(SimpleNamespace(runners={"m:latest": runner}, pending=3)))
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "vllama_queue_depth") == 3
    assert value(samples, "vllama_requests_running", model="m:latest") == 1
    assert value(samples, "vllama_model_memory_bytes", model="m:latest", backend="echo") == 1000
    assert value(samples, "vllama_model_vram_bytes", model="m:latest", backend="echo") == 600
    assert value(samples, "vllama_engine_info", model="m:latest", key="kv_cache_bytes") == 4096
    assert value(samples, "vllama_engine_info", model="m:latest", key="kv_cache_usage") == 0.25
    keys = {dict(labels).get("key") for name, labels in samples if name == "vllama_engine_info"}
    assert keys == {"kv_cache_bytes", "kv_cache_usage"}  # no booleans, no strings


def test_each_core_has_its_own_registry(tmp_path: Path) -> None:
    def core(name: str) -> Vllama:
        return Vllama(Settings(models_dir=tmp_path / name, plugins=("none",), plugin_modules=("vllama.testing.echo",)))

    a, b = core("a"), core("b")
    assert metrics_for(a) is metrics_for(a)
    assert metrics_for(a).registry is not metrics_for(b).registry
    metrics_for(a).generated_tokens.labels("m").inc(5)
    assert metrics_for(b).registry.get_sample_value("vllama_generated_tokens_total", {"model": "m"}) is None
