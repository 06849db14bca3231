"""How fast vllama starts: `vllama --help`, and `vllama serve` until GET / answers.

    .venv/bin/python bench/startup.py [--runs 5]

Runs with every installed plugin loaded, an empty model store, and prints the median and
worst of each over the runs.
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
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for name, fn in (("vllama --help", time_help), ("vllama serve -> GET / 200", time_serve)):
        samples = [fn() for _ in range(args.runs)]
        print(f"{name:<28} median {statistics.median(samples):.3f}s  max {max(samples):.3f}s  ({args.runs} runs)")


if __name__ == "__main__":
    main()
