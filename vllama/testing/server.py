"""Run a real ``vllama serve`` process for end-to-end tests."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``vllama serve`` in a subprocess on a free port, with its own model store.

    ``env`` adds VLLAMA_* settings; the process is stopped on exit and its log kept in
    ``log_path`` for failing tests to show.
    """

    def __init__(self, models_dir: Path, env: Mapping[str, str] | None = None, *, args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.models_dir = Path(models_dir)
        self.log_path = self.models_dir.parent / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "VLLAMA_HOST": f"127.0.0.1:{self.port}",
            "VLLAMA_MODELS": str(self.models_dir),
            **(env or {}),
        }
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vllama", "serve", "--log-level", "warning", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vllama serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise TimeoutError(f"vllama serve did not answer in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """``kill -9`` the server, as a crash or a power cut would stop it; its workers exit
        when they find the server gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def worker_pids(self) -> list[int]:
        """The engine worker processes this server started (Linux: read from ``/proc``)."""
        if self.process is None:
            return []
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid and b"spawn_main" in cmdline:
                pids.append(int(stat.parent.name))
        return pids

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self if self.alive() else self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def create_model(url: str, name: str, weights: Path, **fields: object) -> None:
    """Upload a GGUF file as a blob and create the model ``name`` from it over the API."""
    data = weights.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    httpx.post(f"{url}/api/blobs/{digest}", content=data, timeout=60).raise_for_status()
    body = {"model": name, "files": {weights.name: digest}, "stream": False, **fields}
    response = httpx.post(f"{url}/api/create", json=body, timeout=60)
    if response.status_code != 200:
        raise RuntimeError(f"creating {name} failed: {response.text}")


def create_from_dir(url: str, name: str, directory: Path, **fields: object) -> None:
    """Upload each file of a model directory (safetensors, config, tokenizer) as a blob and
    create the model ``name`` from them over the API, as Ollama's CLI does."""
    files = {}
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        digest = "sha256:" + _file_sha256(path)
        with path.open("rb") as body:
            httpx.post(f"{url}/api/blobs/{digest}", content=body, timeout=300).raise_for_status()
        files[path.name] = digest
    response = httpx.post(f"{url}/api/create", json={"model": name, "files": files, "stream": False, **fields}, timeout=300)
    if response.status_code != 200:
        raise RuntimeError(f"creating {name} failed: {response.text}")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def refused_before_load(url: str, model: str, route: str, body: dict[str, object]) -> str:
    """POST ``body`` for ``model``; assert a 400 that left the model unloaded, and return its error."""
    response = httpx.post(url + route, json={"model": model, **body}, timeout=60)
    assert response.status_code == 400, response.text
    loaded = [m["name"] for m in httpx.get(url + "/api/ps", timeout=10).json()["models"]]
    assert model not in loaded and f"{model}:latest" not in loaded, loaded
    error = response.json()["error"]
    return error if isinstance(error, str) else str(error.get("message", error))
