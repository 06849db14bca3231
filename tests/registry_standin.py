"""A stand-in for Ollama's registry on loopback, speaking the protocol ``ollama pull`` uses:
``GET /v2/{namespace}/{model}/manifests/{tag}`` (``Accept: application/vnd.docker.distribution.manifest.v2+json``)
and ``GET /v2/{namespace}/{model}/blobs/{digest}``, which answers 307 to a "CDN" path that takes Range
requests. Models are built as Ollama builds them (a GGUF model layer, text layers, a config blob
with ``rootfs``); the same pieces can be written as an Ollama store on disk. Faults can be
injected per blob: a connection cut after N bytes, a corrupt byte, slow delivery. Every request is logged."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from loopback import Loopback, StandinServer

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
PIECE = 1 << 16


@dataclass
class Fault:
    """What goes wrong when a blob is served."""

    #: Drop the connection after this many bytes, on the first request without a Range (once).
    cut_after: int | None = None
    #: Serve the blob with one byte changed.
    corrupt: bool = False
    #: Seconds to wait before each piece of 64 KiB.
    delay: float = 0.0


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    range: str | None
    accept: str | None


@dataclass
class OllamaModel:
    """One model as Ollama keeps it: the manifest's bytes and every blob it names."""

    manifest: bytes
    blobs: dict[str, bytes]

    @property
    def layers(self) -> list[dict[str, object]]:
        return json.loads(self.manifest)["layers"]

    def digest_of(self, media: str) -> str:
        return next(str(layer["digest"]) for layer in self.layers if str(layer["mediaType"]).endswith("." + media))


def build_model(weights: bytes, *, media: str = "model", model_format: str = "gguf", **texts: str) -> OllamaModel:
    """An Ollama model: ``weights`` as one layer of ``media`` type, then text layers named by
    keyword (``template``, ``system``, ``params``, ``license``...), then the config blob, as Ollama writes them."""
    blobs: dict[str, bytes] = {}

    def layer(kind: str, data: bytes) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": f"application/vnd.ollama.image.{kind}", "digest": digest, "size": len(data)}

    layers = [layer(media, weights)] + [layer(kind, text.encode()) for kind, text in texts.items()]
    config = json.dumps(
        {
            "model_format": model_format,
            "model_family": "llama",
            "model_families": ["llama"],
            "model_type": "135M",
            "file_type": "Q4_1",
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [str(x["digest"]) for x in layers]},
        }
    ).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    blobs[config_digest] = config
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": len(config)},
        "layers": layers,
    }
    return OllamaModel(json.dumps(manifest).encode(), blobs)


def write_store(root: Path, models: dict[str, OllamaModel]) -> None:
    """Lay models out as Ollama does: ``manifests/registry.ollama.ai/NAMESPACE/MODEL/TAG`` and ``blobs/sha256-<hex>``."""
    for name, model in models.items():
        path, _, tag = name.rpartition(":")
        manifest = root / "manifests" / "registry.ollama.ai" / path / tag
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_bytes(model.manifest)
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        for digest, data in model.blobs.items():
            (root / "blobs" / digest.replace(":", "-")).write_bytes(data)


@dataclass
class RegistryStandin(Loopback):
    """The registry on a loopback port; ``models`` by ``NAMESPACE/MODEL:TAG``. Use as a context manager."""

    models: dict[str, OllamaModel] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: list[Logged] = field(default_factory=list)

    def blob(self, digest: str) -> bytes | None:
        return next((m.blobs[digest] for m in self.models.values() if digest in m.blobs), None)

    def gets(self, digest: str) -> list[Logged]:
        """The requests for a blob's bytes (at the CDN)."""
        return [r for r in self.requests if r.method == "GET" and r.path == f"/cdn/{digest}"]


_MANIFEST = re.compile(r"/v2/(?P<ns>[^/]+)/(?P<model>[^/]+)/manifests/(?P<tag>[^/]+)")
_BLOB = re.compile(r"/v2/(?P<ns>[^/]+)/(?P<model>[^/]+)/blobs/(?P<digest>sha256:[0-9a-f]{64})")


class _Handler(BaseHTTPRequestHandler):
    server: StandinServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        standin = self.server.standin
        standin.requests.append(Logged("GET", self.path, self.headers.get("Range"), self.headers.get("Accept")))
        if m := _MANIFEST.fullmatch(self.path):
            model = standin.models.get(f"{m['ns']}/{m['model']}:{m['tag']}".lower())
            if model is None or MANIFEST_TYPE not in (self.headers.get("Accept") or ""):
                self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            else:
                self._send(200, {"Content-Type": MANIFEST_TYPE}, model.manifest)
        elif m := _BLOB.fullmatch(self.path):
            if standin.blob(m["digest"]) is None:
                self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            else:
                self._send(307, {"Location": f"/cdn/{m['digest']}"})
        elif self.path.startswith("/cdn/") and (data := standin.blob(self.path.removeprefix("/cdn/"))) is not None:
            self._serve(data, standin.faults.get(self.path.removeprefix("/cdn/"), Fault()))
        else:
            self._error(404, "NOT_FOUND", "not found")

    def _serve(self, data: bytes, fault: Fault) -> None:
        start, status, headers = 0, 200, {"Accept-Ranges": "bytes"}
        if (wanted := self.headers.get("Range")) is not None:
            start = int(wanted.removeprefix("bytes=").partition("-")[0])
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if fault.corrupt:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        cut = fault.cut_after if wanted is None else None
        if cut is not None:
            fault.cut_after = None
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data) - start)}.items():
            self.send_header(key, value)
        self.end_headers()
        for at in range(start, len(data), PIECE):
            piece = data[at : at + PIECE]
            if fault.delay:
                time.sleep(fault.delay)
            if cut is not None and at + len(piece) >= cut:
                self.wfile.write(piece[: cut - at])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            try:
                self.wfile.write(piece)
            except (BrokenPipeError, ConnectionResetError):  # the client went away
                self.close_connection = True
                return

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"Content-Type": "application/json"}, json.dumps({"errors": [{"code": code, "message": message}]}).encode())

    def _send(self, status: int, headers: dict[str, str], data: bytes = b"") -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


RegistryStandin.handler = _Handler
