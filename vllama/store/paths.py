"""The server paths ``/api/create`` may read: none unless ``VLLAMA_CREATE_DIRS`` names directories.

Inside those, links are resolved and must stay inside; only a model's files are read
(:mod:`vllama.store.files`); a missing, unreadable or disallowed path gets one and the same
answer, so a client cannot probe the server's file system.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from vllama.errors import BadRequest
from vllama.store.files import model_files

DISABLED = (
    "creating from a path on the server is disabled: upload the files with /api/blobs and send 'files' "
    "(vllama create does), or allow directories with VLLAMA_CREATE_DIRS"
)


def looks_like_path(text: str) -> bool:
    """Is ``from`` a path rather than a model name? Decided from the text alone, never the disk."""
    return text.startswith(("/", "./", "../", "~")) or "\\" in text


class ServerPaths:
    """Model files under the allowed directories."""

    def __init__(self, dirs: Sequence[Path]) -> None:
        self.dirs = tuple(Path(os.path.realpath(Path(d).expanduser())) for d in dirs)

    def _inside(self, real: str) -> bool:
        return any(os.path.commonpath([real, str(d)]) == str(d) for d in self.dirs)

    def files(self, text: str) -> dict[str, Path]:
        """The model files that ``text`` (a file or a model directory) names, as
        ``{relative name: real path}``; 400 if reading it is not allowed."""
        if not self.dirs:
            raise BadRequest(DISABLED)
        unreadable = BadRequest(f"cannot read {text[:200]!r}: no readable file or directory of that name in VLLAMA_CREATE_DIRS")
        try:
            real = os.path.realpath(Path(text).expanduser())
            if not self._inside(real) or not os.access(real, os.R_OK):
                raise unreadable
            source = Path(real)
            if source.is_file():
                return {source.name: source}
            if not source.is_dir():
                raise unreadable
            found = model_files(source)
        except (OSError, ValueError):
            raise unreadable from None
        out = {}
        for rel, path in found.items():
            target = os.path.realpath(path)
            if not self._inside(target):
                raise BadRequest(f"{rel}: links outside VLLAMA_CREATE_DIRS")
            out[rel] = Path(target)
        if not out:
            raise BadRequest(f"{source.name}: no model files (weights, config or tokenizer files)")
        return out
