"""How fast vllama starts: `vllama --help`, `vllama list`, and `vllama serve` until GET / answers.

    .venv/bin/python bench/startup.py [--runs 10] [--cli]

Runs with every installed plugin installed, an empty model store, and prints the median and
worst of each over the runs. `vllama list` runs against a port where nothing listens: it
connects, is refused and says how to start a server (the client's whole path but the reply).
``--cli`` skips ``vllama serve``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

from vllama.testing.server import free_port


def time_help() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vllama", "--help"], check=True, capture_output=True)
    return time.perf_counter() - start


def time_list() -> float:
    env = {**os.environ, "VLLAMA_HOST": f"127.0.0.1:{free_port()}"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "vllama", "list"], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if "could not connect" not in out.stderr:
        raise RuntimeError(f"vllama list: {out.stderr}")
    return elapsed


def time_serve() -> float:
    port = free_port()
    env = {**os.environ, "VLLAMA_HOST": f"127.0.0.1:{port}", "VLLAMA_MODELS": tempfile.mkdtemp()}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vllama", "serve", "--log-level", "warning"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
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
    args = parser.parse_args()
    measures = [("vllama --help", time_help), ("vllama list (no server)", time_list)]
    if not args.cli:
        measures.append(("vllama serve -> GET / 200", time_serve))
    for name, fn in measures:
        samples = [fn() for _ in range(args.runs)]
        print(f"{name:<28} median {statistics.median(samples):.3f}s  max {max(samples):.3f}s  ({args.runs} runs)")


if __name__ == "__main__":
    main()
