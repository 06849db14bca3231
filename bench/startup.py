"""How fast vllama starts: `vllama --help`, `vllama list`, and `vllama serve` until GET / answers.

    .venv/bin/python bench/startup.py [--runs 10] [--cli] [--before OTHER_CHECKOUT]

Runs with every installed plugin installed, an empty model store, and prints the median and
worst wall time of each over the runs, and the median CPU time (user + system) of the CLI
commands, which other work on a shared machine disturbs less. `vllama list` runs against a port
where nothing listens: it connects, is refused and says how to start a server (the client's
whole path but the reply). ``--cli`` skips ``vllama serve``. ``--before DIR`` also times the
CLI commands of another checkout (an earlier commit, e.g. from ``git worktree add``), round by
round beside this one's.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from vllama.testing.server import free_port

HERE = Path(__file__).resolve().parent.parent
PLUGINS = ("vllama-llamacpp", "vllama-mlx", "vllama-vllm")


def checkout_env(root: Path) -> dict[str, str]:
    """The environment that runs ``root``'s vllama and plugins, whatever is installed."""
    paths = [root, *(root / "plugins" / p / "src" for p in PLUGINS)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in paths)}


def run_cli(root: Path, *args: str) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """``python -m vllama ARGS`` from ``root``, run outside it: (wall s, CPU s, result)."""
    env = {**checkout_env(root), "VLLAMA_HOST": f"127.0.0.1:{free_port()}"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "vllama", *args], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out


def time_help(root: Path) -> tuple[float, float]:
    wall, cpu, out = run_cli(root, "--help")
    if out.returncode != 0:
        raise RuntimeError(f"vllama --help: {out.stderr}")
    return wall, cpu


def time_list(root: Path) -> tuple[float, float]:
    wall, cpu, out = run_cli(root, "list")
    if "could not connect" not in out.stderr:
        raise RuntimeError(f"vllama list: {out.stderr}")
    return wall, cpu


def time_serve() -> float:
    port = free_port()
    env = {**checkout_env(HERE), "VLLAMA_HOST": f"127.0.0.1:{port}", "VLLAMA_MODELS": tempfile.mkdtemp()}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllama", "serve", "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(3000):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5).status_code == 200:
                    return time.perf_counter() - start
            except httpx.TransportError:
                time.sleep(0.005)
        raise TimeoutError("vllama serve did not answer")
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cli", action="store_true", help="Measure the CLI only, not vllama serve.")
    parser.add_argument("--before", type=Path, help="Another checkout whose CLI is timed round by round beside this one's.")
    args = parser.parse_args()
    checkouts = {"": HERE} if args.before is None else {"before": args.before.resolve(), "after": HERE}
    measures: list[tuple[str, Callable[[Path], tuple[float, float]]]] = [
        ("vllama --help", time_help),
        ("vllama list (no server)", time_list),
    ]
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.runs):
        for name, fn in measures:
            for label, root in checkouts.items():
                samples.setdefault((name, label), []).append(fn(root))
    for (name, label), xs in samples.items():
        wall, cpu = [w for w, _ in xs], [c for _, c in xs]
        spread = f"median {statistics.median(wall):.3f}s  max {max(wall):.3f}s  CPU median {statistics.median(cpu):.3f}s"
        print(f"{name:<28} {label:<6} {spread}  ({args.runs} runs)")
    if not args.cli:
        serve = [time_serve() for _ in range(args.runs)]
        print(
            f"{'vllama serve -> GET / 200':<28} {'':<6} median {statistics.median(serve):.3f}s  max {max(serve):.3f}s  ({args.runs} runs)"
        )


if __name__ == "__main__":
    main()
