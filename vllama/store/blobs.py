"""Content-addressed blobs: ``blobs/sha256-<hex>``, written atomically and verified."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterable, Iterable
from pathlib import Path

from vllama.errors import BadRequest, NotFound

_DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})")
_BLOB_NAME = re.compile(r"sha256-[0-9a-f]{64}")
CHUNK = 1 << 20
#: The name a download in progress has beside the blob it will become (as Ollama names it):
#: kept across restarts, so that a pull continues where it stopped.
PARTIAL_SUFFIX = "-partial"


class ReadOnlyStore(BadRequest):
    """A write to a store that vllama only reads (an Ollama store)."""

    status = 403


def parse_digest(digest: str) -> str:
    """Return the hex of a ``sha256:<hex>`` digest; 400 if it is not one."""
    m = _DIGEST.fullmatch(digest or "")
    if not m:
        raise BadRequest(f'invalid digest format "{digest}"')
    return m.group(1)


def is_digest(text: str) -> bool:
    """Is ``text`` a blob digest (``sha256:<hex>``, or ``@sha256:<hex>`` as a Modelfile FROM)?"""
    return _DIGEST.fullmatch(text.removeprefix("@")) is not None


class Blobs:
    """The blob directory; ``read_only`` refuses every write (:class:`ReadOnlyStore`)."""

    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self.root = root
        self.read_only = read_only

    def path(self, digest: str) -> Path:
        return self.root / f"sha256-{parse_digest(digest)}"

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def require(self, digest: str) -> Path:
        path = self.path(digest)
        if not path.is_file():
            raise NotFound(f'blob "{digest}" not found')
        return path

    def partial(self, digest: str) -> Path:
        """Where a download of ``digest`` is kept until it is verified."""
        self.writable()
        return self.root / f"sha256-{parse_digest(digest)}{PARTIAL_SUFFIX}"

    def writable(self) -> None:
        """Raise :class:`ReadOnlyStore` if this store is only read."""
        if self.read_only:
            raise ReadOnlyStore(
                f"the model store at {self.root.parent} is an Ollama store, which vllama only reads; "
                "run `vllama import-ollama` to adopt its models into vllama's own store (VLLAMA_MODELS)"
            )

    def commit_partial(self, partial: Path, actual: str, expected: str) -> str:
        """Move a finished download into place once its SHA-256 (``actual``, hex) is ``expected``;
        on a mismatch the download is removed and ``BadRequest`` raised. A download that another
        pull of the same blob moved into place already counts as done."""
        if not partial.exists() and self.has(expected) and parse_digest(expected) == actual:
            return expected
        return self._commit(partial, actual, expected)

    def _tmp(self) -> tempfile._TemporaryFileWrapper[bytes]:
        self.writable()
        self.root.mkdir(parents=True, exist_ok=True)
        return tempfile.NamedTemporaryFile(dir=self.root, prefix=".partial-", delete=False)

    def _commit(self, tmp: Path, actual: str, expected: str | None, new: list[str] | None = None) -> str:
        digest = f"sha256:{actual}"
        if expected is not None and parse_digest(expected) != actual:
            tmp.unlink(missing_ok=True)
            raise BadRequest(f'digest mismatch, expected "{expected}", got "{digest}"')
        if new is not None and not self.has(digest):
            new.append(digest)
        os.replace(tmp, self.path(digest))
        return digest

    def write_bytes(self, data: bytes, expected: str | None = None) -> str:
        """Store bytes; return their digest."""
        return self.write_chunks([data], expected)

    def write_chunks(self, chunks: Iterable[bytes], expected: str | None = None) -> str:
        h = hashlib.sha256()
        with self._tmp() as f:
            try:
                for chunk in chunks:
                    h.update(chunk)
                    f.write(chunk)
            except BaseException:
                _discard(f.name)
                raise
        return self._commit(Path(f.name), h.hexdigest(), expected)

    async def write_stream(self, chunks: AsyncIterable[bytes], expected: str | None = None) -> str:
        """Store a streamed upload; a digest mismatch leaves nothing behind."""
        h = hashlib.sha256()
        with self._tmp() as f:
            try:
                async for chunk in chunks:
                    h.update(chunk)
                    f.write(chunk)
            except BaseException:
                _discard(f.name)
                raise
        return self._commit(Path(f.name), h.hexdigest(), expected)

    def import_file(self, source: Path, new: list[str] | None = None) -> str:
        """Copy a local file in (hashing as it copies); return its digest. A digest the store did
        not hold yet is appended to ``new``."""
        h = hashlib.sha256()
        with source.open("rb") as src, self._tmp() as dst:
            try:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    dst.write(chunk)
            except BaseException:
                Path(dst.name).unlink(missing_ok=True)
                raise
        return self._commit(Path(dst.name), h.hexdigest(), None, new)

    def adopt_file(self, source: Path, digest: str, new: list[str] | None = None) -> bool:
        """Take in a file that another store holds as ``digest``: verified, then hard-linked (no
        copy, the source is left as it is) or copied where a link cannot be made. True if linked."""
        if self.has(digest):
            return True
        h = hashlib.sha256()
        with source.open("rb") as src:
            while chunk := src.read(CHUNK):
                h.update(chunk)
        if h.hexdigest() != parse_digest(digest):
            raise BadRequest(
                f'{source} does not hold what its name says: digest mismatch, expected "{digest}", got "sha256:{h.hexdigest()}"'
            )
        self.writable()
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, self.path(digest))
            linked = True
        except FileExistsError:
            return True
        except OSError:  # another file system, or links not allowed
            with source.open("rb") as src:
                self.write_chunks(iter(lambda: src.read(CHUNK), b""), expected=digest)
            linked = False
        if new is not None:
            new.append(digest)
        return linked

    def all(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {f"sha256:{p.name[7:]}" for p in self.root.glob("sha256-*") if _BLOB_NAME.fullmatch(p.name)}

    def remove(self, digest: str) -> None:
        self.writable()
        self.path(digest).unlink(missing_ok=True)


def _discard(path: str) -> None:
    """Remove a failed write's temporary file."""
    Path(path).unlink(missing_ok=True)
