"""Aggregate throughput: vllama serve with the MLX backend versus mlx_lm.server, on the same model.

    .venv/bin/python bench/mlx_servers.py [--model DIR] [--parallel 4] [--levels 1,4] [--num-predict 32] [--repeat 3]

Starts, on loopback ports, on the same safetensors (or MLX) model directory:

  vllama          ``vllama serve`` with VLLAMA_BACKEND=mlx and VLLAMA_NUM_PARALLEL=<parallel>, and a model made by
                  ``vllama create`` from a Modelfile ``FROM <dir>`` / ``PARAMETER num_ctx <ctx>``
  mlx_lm.server   ``python -m mlx_lm.server --model <dir> --decode-concurrency <parallel> --prompt-concurrency
                  <parallel>`` (its own continuous batching; HF_HUB_CACHE points at an empty directory of the run)

then runs ``vllama bench`` with ``--against`` at each concurrency level, ``--repeat`` times, alternating which
server goes first, both through the OpenAI API (/v1/chat/completions), temperature 0, ``--num-predict`` tokens
(``ignore_eos``, which mlx_lm.server ignores: the tokens/request column shows whether a reply ended early), a
prompt tagged anew for every run (no server answers from a prompt cache filled by an earlier run), and stops both
servers at the end, also on Ctrl-C or SIGTERM. The model defaults to SmolLM2-135M-Instruct made from the PyPI
GGUF (vllama.testing.hf_models.smollm2_safetensors).

Target: vllama >= 0.95x mlx_lm.server at concurrency 1 and 4.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llamacpp_direct import load_average, machine_info, print_machine
from llamacpp_servers import Server, log, print_table, unique_prompt

from vllama.testing.server import free_port

MODEL_NAME = "bench-mlx"
#: mlx_lm.server's name for the model given by --model.
MLX_MODEL = "default_model"
TARGET = 0.95


def run_once(vllama: Server, other: Server, level: int, rep: int, args: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    sides = [("vllama", vllama.url, MODEL_NAME), (other.name, other.url, MLX_MODEL)]
    if rep % 2:
        sides.reverse()
    (n1, u1, m1), (n2, u2, m2) = sides
    n = args.requests or max(4, 2 * level)
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
        "1",
        "--json",
    ]
    before = load_average()
    log(f"\n$ {' '.join(cmd)}\n  (load average {before})")
    started = time.perf_counter()
    cpu0 = {s.name: s.cpu() for s in (vllama, other)}
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=args.bench_timeout)
    cpu = {s.name: s.cpu() - cpu0[s.name] for s in (vllama, other)}
    (outdir / f"vllama-vs-mlx-c{level}-r{rep + 1}.json").write_text(r.stdout)
    if r.returncode != 0 and not r.stdout.strip().startswith("{"):
        raise RuntimeError(f"vllama bench failed ({r.returncode}):\n{r.stderr[-3000:]}")
    result = json.loads(r.stdout)
    print_table(result)
    stats = {s["target"]: s for s in result["levels"][0]["results"]}
    mine, theirs = stats["vllama"], stats[other.name]
    return {
        "concurrency": level,
        "repeat": rep + 1,
        "first": n1,
        "requests": n,
        "vllama_tok_s": mine["tokens_per_s"],
        "mlx_tok_s": theirs["tokens_per_s"],
        "ratio": mine["tokens_per_s"] / theirs["tokens_per_s"] if theirs["tokens_per_s"] else None,
        "vllama_tokens_per_request": _per_request(mine),
        "mlx_tokens_per_request": _per_request(theirs),
        "vllama_ttft_p50_s": _p50(mine, "ttft_s"),
        "mlx_ttft_p50_s": _p50(theirs, "ttft_s"),
        # Generated tokens per CPU-second of each server's process tree over the whole run (warm-up included):
        # less sensitive than tok/s to other work on a shared machine.
        "vllama_tok_per_cpu_s": _per_cpu(mine, cpu["vllama"]),
        "mlx_tok_per_cpu_s": _per_cpu(theirs, cpu[other.name]),
        "errors": mine["errors"] + theirs["errors"],
        "first_error": mine.get("first_error") or theirs.get("first_error"),
        "loadavg_before": before,
        "loadavg_after": load_average(),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _per_request(s: dict[str, Any]) -> float:
    ok = s["requests"] - s["errors"]
    return s["output_tokens"] / ok if ok else 0.0


def _per_cpu(s: dict[str, Any], cpu_s: float) -> float:
    return s["output_tokens"] / cpu_s if cpu_s > 0 else 0.0


def _p50(s: dict[str, Any], key: str) -> float | None:
    d = s.get(key)
    return d["p50"] if d else None


def print_summary(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'conc':>4} {'rep':>3} {'first':<13} {'reqs':>4} {'vllama tok/s':>12} {'mlx tok/s':>9} {'ratio':>6}"
        f" {'tok/req v/m':>11} {'TTFT p50 s v/m':>14} {'tok/cpu-s v/m':>13} {'errs':>4}  load avg before -> after"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        ttft = f"{r['vllama_ttft_p50_s'] or 0:.1f}/{r['mlx_ttft_p50_s'] or 0:.1f}"
        per = f"{r['vllama_tokens_per_request']:.0f}/{r['mlx_tokens_per_request']:.0f}"
        per_cpu = f"{r['vllama_tok_per_cpu_s']:.2f}/{r['mlx_tok_per_cpu_s']:.2f}"
        print(
            f"{r['concurrency']:>4} {r['repeat']:>3} {r['first']:<13} {r['requests']:>4} {r['vllama_tok_s']:>12.2f}"
            f" {r['mlx_tok_s']:>9.2f} {_x(r['ratio']):>6} {per:>11} {ttft:>14} {per_cpu:>13} {r['errors']:>4}"
            f"  {r['loadavg_before']} -> {r['loadavg_after']}"
        )
    print("\nPer level (median over the repeats):")
    print(f"{'conc':>4} {'vllama tok/s':>12} {'mlx tok/s':>9} {'ratio':>6} {'target':>8} {'tok/cpu-s ratio':>15}")
    levels: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        levels.setdefault(r["concurrency"], []).append(r)
    for level, rs in levels.items():
        ratio = statistics.median([r["ratio"] for r in rs if r["ratio"]] or [0.0])
        print(
            f"{level:>4} {statistics.median([r['vllama_tok_s'] for r in rs]):>12.2f} {statistics.median([r['mlx_tok_s'] for r in rs]):>9.2f}"
            f" {_x(ratio):>6} {('>=' if ratio >= TARGET else '<') + f'{TARGET:g}x':>8} {_x(_median_cpu_ratio(rs)):>15}"
        )


def _median_cpu_ratio(rows: list[dict[str, Any]]) -> float | None:
    ratios = [r["vllama_tok_per_cpu_s"] / r["mlx_tok_per_cpu_s"] for r in rows if r["mlx_tok_per_cpu_s"]]
    return statistics.median(ratios) if ratios else None


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="model directory (default: SmolLM2-135M-Instruct made from the PyPI GGUF)")
    parser.add_argument("--ctx", type=int, default=2048, help="context per sequence (default 2048)")
    parser.add_argument("--parallel", type=int, default=4, help="sequences each server batches (default 4)")
    parser.add_argument("--levels", default="1,4", help="concurrency levels (default 1,4)")
    parser.add_argument("--requests", type=int, help="requests per level (default max(4, 2 x level))")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each level, alternating which server goes first (default 3)")
    parser.add_argument("--num-predict", type=int, default=32, help="tokens per request (default 32)")
    parser.add_argument("--prompt", default="short", help="vllama bench --prompt (default short)")
    parser.add_argument("--outdir", help="where the logs and the bench JSON go (default: a new /tmp directory)")
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--bench-timeout", type=float, default=1800.0, help="seconds one vllama bench run may take")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if args.model:
        model = Path(args.model).resolve()
    else:
        from vllama.testing.hf_models import smollm2_safetensors

        model = smollm2_safetensors()
    outdir = Path(args.outdir or tempfile.mkdtemp(prefix="vllama-mlx-bench-"))
    (outdir / "hf-cache").mkdir(parents=True, exist_ok=True)

    def on_signal(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    print("Machine (before the run):")
    print_machine(machine_info())
    config = {
        "model": str(model),
        "ctx": args.ctx,
        "parallel": args.parallel,
        "levels": levels,
        "repeat": args.repeat,
        "num_predict": args.num_predict,
        "prompt": args.prompt,
        "outdir": str(outdir),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print(f"Config: {json.dumps(config)}\n", flush=True)

    vport, mport = free_port(), free_port()
    vllama = Server(
        "vllama",
        [sys.executable, "-m", "vllama", "serve", "--log-level", "warning"],
        port=vport,
        ready_path="/",
        logdir=outdir,
        env={
            "VLLAMA_HOST": f"127.0.0.1:{vport}",
            "VLLAMA_MODELS": str(outdir / "models"),
            "VLLAMA_BACKEND": "mlx",
            "VLLAMA_NUM_PARALLEL": str(args.parallel),
            "VLLAMA_KEEP_ALIVE": "24h",
        },
    )
    mlx = Server(
        "mlx_lm.server",
        [
            sys.executable,
            "-m",
            "mlx_lm.server",
            "--model",
            str(model),
            "--port",
            str(mport),
            "--log-level",
            "WARNING",
            "--decode-concurrency",
            str(args.parallel),
            "--prompt-concurrency",
            str(args.parallel),
        ],
        port=mport,
        ready_path="/health",
        logdir=outdir,
        env={"HF_HUB_CACHE": str(outdir / "hf-cache")},
    )
    rows: list[dict[str, Any]] = []
    try:
        vllama.start(args.start_timeout)
        modelfile = outdir / "Modelfile"
        modelfile.write_text(f"FROM {model}\nPARAMETER num_ctx {args.ctx}\n")
        subprocess.run(
            [sys.executable, "-m", "vllama", "create", MODEL_NAME, "-f", str(modelfile)],
            check=True,
            env={**os.environ, "VLLAMA_HOST": f"127.0.0.1:{vport}"},
            stdout=subprocess.DEVNULL,
        )
        httpx.post(
            vllama.url + "/api/generate",
            json={"model": MODEL_NAME, "prompt": "Hello", "stream": False, "options": {"num_predict": 1}},
            timeout=args.start_timeout,
        ).raise_for_status()
        mlx.start(args.start_timeout)
        for level in levels:
            for rep in range(args.repeat):
                rows.append(run_once(vllama, mlx, level, rep, args, outdir))
    finally:
        for server in (mlx, vllama):
            server.stop()
    print(f"\nSummary ({time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average now {load_average()}; logs and JSON in {outdir}):")
    print_summary(rows)


if __name__ == "__main__":
    main()
