"""Ollama's registry (``registry.ollama.ai`` and registries that speak its protocol): a model's
manifest, ``GET /v2/NAMESPACE/MODEL/manifests/TAG``, and its blobs, ``GET /v2/NAMESPACE/MODEL/blobs/DIGEST``
(answered with a redirect to a CDN, which takes Range requests).

A blob is downloaded beside where it will live (``blobs/sha256-<hex>-partial``, as Ollama names it),
hashed as it arrives, and continued with a Range request after a dropped connection or in a later
pull; it becomes a blob only once its SHA-256 is the one the manifest names.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import httpx
import msgspec

from vllama import __version__
from vllama.errors import NotFound, VllamaError
from vllama.names import DEFAULT_HOST, ModelName
from vllama.store.blobs import CHUNK, parse_digest
from vllama.store.store import MANIFEST_TYPE, Manifest

#: Where ``registry.ollama.ai`` names are pulled from unless ``VLLAMA_REGISTRY`` says otherwise.
DEFAULT_REGISTRY = "https://registry.ollama.ai"
#: Times a download is continued after its connection drops, while it makes progress.
RETRIES = 5

_downloading: dict[str, threading.Lock] = {}
_downloading_lock = threading.Lock()


class RegistryUnreachable(VllamaError):
    """The registry could not be reached (no answer, not a refusal)."""


def base_url(name: ModelName, registry: str, *, insecure: bool = False) -> str:
    """The registry a name is pulled from: ``registry`` for Ollama's host, else the name's host
    over HTTPS (HTTP with ``insecure``, as ``ollama pull --insecure``)."""
    if name.host.lower() == DEFAULT_HOST:
        return registry.rstrip("/")
    return f"{'http' if insecure else 'https'}://{name.host}"


def client() -> httpx.Client:
    """An HTTP client for the registry: redirects followed (blobs live on a CDN), long reads allowed."""
    return httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(30.0, read=120.0),
        headers={"User-Agent": f"vllama/{__version__}"},
    )


def fetch_manifest(http: httpx.Client, base: str, name: ModelName) -> Manifest:
    """The manifest of ``name``'s tag; NotFound as Ollama words it if the registry has no such model."""
    url = f"{base}/v2/{name.namespace}/{name.model}/manifests/{name.tag}"
    response = _get(http, url, f"{base} for '{name.display}'", headers={"Accept": MANIFEST_TYPE})
    if response.status_code == 404:
        raise NotFound(f"pull model manifest: file does not exist ('{name.display}' is not in the registry at {base})")
    _check(response, base, "pull model manifest")
    try:
        return msgspec.json.decode(response.content, type=Manifest)
    except msgspec.DecodeError as e:
        raise VllamaError(f"pull model manifest: the registry at {base} answered something that is not a manifest: {e}") from None


def fetch_small(http: httpx.Client, base: str, name: ModelName, digest: str) -> bytes:
    """A small blob (a config) in memory, verified."""
    response = _get(http, blob_url(base, name, digest), base)
    _check(response, base, f"pull {digest}")
    if hashlib.sha256(response.content).hexdigest() != parse_digest(digest):
        raise VllamaError(f"digest mismatch, file must be downloaded again: {digest} from {base}")
    return response.content


def blob_url(base: str, name: ModelName, digest: str) -> str:
    return f"{base}/v2/{name.namespace}/{name.model}/blobs/{digest}"


def download(http: httpx.Client, url: str, partial: Path, size: int, report: Callable[[int], None]) -> str:
    """Download into ``partial``, continuing what it holds with a Range request; return the SHA-256
    (hex) of the whole file. ``report`` hears the bytes held so far (and may raise to stop). Hold
    :func:`downloading` around it: two downloads of one file must not write it at once."""
    part = _Partial(partial, size)
    report(part.held)
    tries = 0
    while part.held < size:
        before = part.held
        try:
            _receive(http, url, part, report)
        except httpx.TransportError as e:
            tries = 0 if part.held > before else tries + 1
            if tries >= RETRIES:
                raise RegistryUnreachable(f"downloading {url} failed after {RETRIES} tries: {e}") from None
            continue
        if part.held < size:  # the body ended early without an error: continue it
            tries += 1
            if tries >= RETRIES:
                raise VllamaError(f"downloading {url} stopped at {part.held} of {size} bytes")
    if part.held > size:
        partial.unlink(missing_ok=True)
        raise VllamaError(f"{url} is larger than the manifest says ({part.held} > {size} bytes): file must be downloaded again")
    return part.hash.hexdigest()


class _Partial:
    """A download in progress: its file, the bytes it holds and their running SHA-256."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.restart()
        try:
            held = path.stat().st_size
        except FileNotFoundError:
            return
        if held > size:  # not this blob's beginning
            path.unlink()
            return
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                self.hash.update(chunk)
        self.held = held

    def restart(self) -> None:
        self.hash = hashlib.sha256()
        self.held = 0

    def write(self, f: BinaryIO, chunk: bytes) -> None:
        f.write(chunk)
        self.hash.update(chunk)
        self.held += len(chunk)


def _receive(http: httpx.Client, url: str, part: _Partial, report: Callable[[int], None]) -> None:
    """One request for the bytes from ``part.held`` on."""
    headers = {"Range": f"bytes={part.held}-"} if part.held else {}
    with http.stream("GET", url, headers=headers) as response:
        if response.status_code == 200 and part.held:  # the server ignores Range: start again
            part.restart()
        elif response.status_code not in (200, 206):
            response.read()
            _check(response, url, "pull blob")
        part.path.parent.mkdir(parents=True, exist_ok=True)
        with part.path.open("r+b" if part.path.exists() else "wb") as f:
            f.seek(part.held)
            f.truncate()
            for chunk in response.iter_bytes():  # as it arrives: a dropped connection loses nothing held
                part.write(f, chunk)
                report(part.held)


def downloading(partial: Path) -> threading.Lock:
    """The lock of one partial file in this process: two pulls of one model take turns, and the
    second finds the blob the first made."""
    with _downloading_lock:
        return _downloading.setdefault(str(partial), threading.Lock())


def _get(http: httpx.Client, url: str, base: str, headers: dict[str, str] | None = None) -> httpx.Response:
    try:
        return http.get(url, headers=headers)
    except httpx.TransportError as e:
        raise RegistryUnreachable(f"pull model manifest: cannot reach the registry at {base}: {e or type(e).__name__}") from None


def _check(response: httpx.Response, where: str, what: str) -> None:
    if response.status_code < 400:
        return
    if response.status_code == 404:
        raise NotFound(f"{what}: file does not exist")
    if response.status_code in (401, 403):
        raise VllamaError(f"{what}: {where} refused access ({response.status_code}); vllama pulls public models only")
    detail = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    raise VllamaError(f"{what}: {where} answered {response.status_code}{': ' + detail if detail else ''}")
