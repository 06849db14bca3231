"""A stand-in for the Hugging Face Hub on loopback, speaking the HTTP API that ``huggingface_hub``
uses to pull: ``GET /api/models/{repo}[/revision/{rev}]`` (model_info, with ``blobs=true`` file
metadata), ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` (``X-Repo-Commit``, ``ETag``; LFS files
answer 302 to a second "CDN" server, with ``X-Linked-Etag`` = their SHA-256 and ``X-Linked-Size``),
and Range requests. Faults can be injected per file: a connection cut after N bytes, corrupt
bytes, slow delivery. Every request is logged."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

PIECE = 1 << 20
LFS = (".gguf", ".safetensors")


@dataclass
class HubFile:
    """One file of a repo: bytes in memory, or a file on disk followed by ``pad`` zero bytes (so
    that one file on disk can stand for several different ones)."""

    data: bytes | Path
    lfs: bool
    pad: int = 0

    @cached_property
    def size(self) -> int:
        return (len(self.data) if isinstance(self.data, bytes) else self.data.stat().st_size) + self.pad

    @cached_property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for piece in self.read(0, self.size):
            h.update(piece)
        return h.hexdigest()

    @cached_property
    def git_oid(self) -> str:
        h = hashlib.sha1(f"blob {self.size}\0".encode())
        for piece in self.read(0, self.size):
            h.update(piece)
        return h.hexdigest()

    def read(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start..end`` (exclusive), in pieces."""
        if isinstance(self.data, bytes):
            yield (self.data + bytes(self.pad))[start:end]
            return
        with self.data.open("rb") as f:
            f.seek(start)
            while start < end and (piece := f.read(min(PIECE, end - start))):
                start += len(piece)
                yield piece
        if start < end:
            yield bytes(end - start)


@dataclass
class Fault:
    """What goes wrong when a file is served."""

    #: Drop the connection after this many bytes, on the first request without a Range.
    cut_after: int | None = None
    #: Serve the file with one byte changed (so its SHA-256 is not the listed one).
    corrupt: bool = False
    #: Seconds to wait before each MiB.
    delay: float = 0.0


@dataclass(frozen=True)
class Logged:
    server: str
    method: str
    path: str
    range: str | None


@dataclass
class HubStandin:
    """The hub and its CDN, on two loopback ports. Use as a context manager."""

    repos: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    faults: dict[tuple[str, str], Fault] = field(default_factory=dict)
    requests: list[Logged] = field(default_factory=list)

    def add_repo(self, repo: str, files: Mapping[str, bytes | Path | tuple[Path, int]]) -> None:
        """Files by path: bytes, a file, or (a file, zero bytes to append). GGUF and safetensors files are in LFS."""
        self.repos[repo] = {}
        for path, data in files.items():
            source, pad = data if isinstance(data, tuple) else (data, 0)
            self.repos[repo][path] = HubFile(source, path.endswith(LFS), pad)

    def commit(self, repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()

    def env(self, home: Path) -> dict[str, str]:
        """Environment for a process that should pull from this stand-in, with its own cache."""
        return {
            "HF_ENDPOINT": self.url,
            "HF_HOME": str(home / "hf"),
            "HF_HUB_CACHE": str(home / "hf" / "hub"),
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_TOKEN": "",
        }

    def logged(self, method: str, path_end: str) -> list[Logged]:
        return [r for r in self.requests if r.method == method and unquote(r.path).endswith(path_end)]

    def __enter__(self) -> HubStandin:
        self._servers = {role: _Server(self, role) for role in ("hub", "cdn")}
        for server in self._servers.values():
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.url = self._servers["hub"].url
        self.cdn_url = self._servers["cdn"].url
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, standin: HubStandin, role: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.standin, self.role = standin, role
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def do_HEAD(self) -> None:
        self._handle(body=False)

    def do_GET(self) -> None:
        self._handle(body=True)

    def _handle(self, body: bool) -> None:
        hub = self.server.standin
        url = urlsplit(self.path)
        hub.requests.append(Logged(self.server.role, self.command, url.path, self.headers.get("Range")))
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        try:
            if self.server.role == "cdn":  # /{org}/{repo}/{path...}
                self._serve_file("/".join(parts[:2]), "/".join(parts[2:]), body)
            elif parts[:2] == ["api", "models"]:  # /api/models/{org}/{repo}[/revision/{rev}]
                self._model_info("/".join(parts[2:4]), parts[5] if len(parts) > 5 else "main", parse_qs(url.query))
            elif len(parts) > 4 and parts[2] == "resolve":  # /{org}/{repo}/resolve/{rev}/{path...}
                self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]), body)
            else:
                self._error(404, "Entry not found", "EntryNotFound")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _repo(self, repo: str, revision: str) -> dict[str, HubFile] | None:
        hub = self.server.standin
        if repo not in hub.repos:
            self._error(404, "Repository not found", "RepoNotFound")
            return None
        if revision not in ("main", hub.commit(repo)):
            self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return None
        return hub.repos[repo]

    def _model_info(self, repo: str, revision: str, query: dict[str, list[str]]) -> None:
        files = self._repo(repo, revision)
        if files is None:
            return
        siblings = []
        for path, f in sorted(files.items()):
            sibling: dict[str, object] = {"rfilename": path}
            if query.get("blobs", [""])[0].lower() == "true":
                sibling.update(size=f.size, blobId=f.git_oid)
                if f.lfs:
                    sibling["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": 134}
            siblings.append(sibling)
        data = json.dumps(
            {"id": repo, "modelId": repo, "sha": self.server.standin.commit(repo), "private": False, "siblings": siblings}
        ).encode()
        self._send(200, {"Content-Type": "application/json", "Content-Length": str(len(data))}, data)

    def _resolve(self, repo: str, revision: str, path: str, body: bool) -> None:
        files = self._repo(repo, revision)
        if files is None:
            return
        hub = self.server.standin
        commit = {"X-Repo-Commit": hub.commit(repo)}
        f = files.get(path)
        if f is None:
            self._error(404, "Entry not found", "EntryNotFound", commit)
        elif f.lfs:
            self._send(
                302,
                {
                    **commit,
                    "Location": f"{hub.cdn_url}/{repo}/{path}",
                    "X-Linked-Etag": f'"{f.sha256}"',
                    "X-Linked-Size": str(f.size),
                    "ETag": f'"{f.git_oid}"',
                    "Content-Length": "0",
                },
            )
        else:
            self._serve_file(repo, path, body, {**commit, "ETag": f'"{f.git_oid}"'})

    def _serve_file(self, repo: str, path: str, body: bool, headers: dict[str, str] | None = None) -> None:
        hub = self.server.standin
        f = hub.repos.get(repo, {}).get(path)
        if f is None:
            self._error(404, "Not found", "EntryNotFound")
            return
        fault = hub.faults.get((repo, path), Fault())
        start, end = 0, f.size
        status, extra = 200, dict(headers or {})
        if (wanted := self.headers.get("Range")) is not None:
            first, _, last = wanted.removeprefix("bytes=").partition("-")
            start, end = int(first), (int(last) + 1 if last else f.size)
            status = 206
            extra["Content-Range"] = f"bytes {start}-{end - 1}/{f.size}"
        self._send(status, {**extra, "Content-Length": str(end - start), "Accept-Ranges": "bytes"})
        if not body:
            return
        cut = fault.cut_after if wanted is None else None
        if cut is not None:
            fault.cut_after = None  # only once
        sent = start
        for piece in f.read(start, end):
            if fault.delay:
                time.sleep(fault.delay)
            if fault.corrupt and sent <= f.size // 2 < sent + len(piece):
                at = f.size // 2 - sent
                piece = piece[:at] + bytes([piece[at] ^ 0xFF]) + piece[at + 1 :]
            if cut is not None and sent + len(piece) >= start + cut:
                self.wfile.write(piece[: start + cut - sent])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(piece)
            sent += len(piece)

    def _error(self, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
        data = json.dumps({"error": message}).encode()
        self._send(
            status,
            {
                **(headers or {}),
                "X-Error-Code": code,
                "X-Error-Message": message,
                "Content-Type": "application/json",
                "Content-Length": str(len(data)),
            },
            data,
        )

    def _send(self, status: int, headers: dict[str, str], data: bytes = b"") -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)
