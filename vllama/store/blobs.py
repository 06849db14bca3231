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
CHUNK = 1 << 20


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
    """The blob directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / f"sha256-{parse_digest(digest)}"

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def require(self, digest: str) -> Path:
        path = self.path(digest)
        if not path.is_file():
            raise NotFound(f'blob "{digest}" not found')
        return path

    def _tmp(self) -> tempfile._TemporaryFileWrapper[bytes]:
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

    def all(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {f"sha256:{p.name[7:]}" for p in self.root.glob("sha256-*")}

    def remove(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)


def _discard(path: str) -> None:
    """Remove a failed write's temporary file."""
    Path(path).unlink(missing_ok=True)
