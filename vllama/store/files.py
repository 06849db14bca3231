"""Which files of a local directory make a model: weights, config and tokenizer files, bounded.

``vllama create`` uploads these and the server reads only these from an allowed directory, so a
directory with other things in it (a checkout, a home directory) is never copied wholesale.
"""

from __future__ import annotations

import os
from pathlib import Path

from vllama.errors import BadRequest

#: Weights: any size.
WEIGHT_SUFFIXES = (".safetensors", ".gguf")
#: Config, tokenizer and template files, each at most :data:`MAX_SMALL_FILE` bytes.
SMALL_SUFFIXES = (".json", ".jinja", ".txt", ".model", ".tiktoken")
MAX_SMALL_FILE = 128 * 2**20
#: Files in a model directory at most; a model folder at most this deep (``1_Pooling/config.json``).
MAX_FILES = 512
MAX_DEPTH = 2


def is_model_file(rel: str, size: int) -> bool:
    """Is ``rel`` (a path inside a model directory) a file a model needs?"""
    parts = rel.split("/")
    if len(parts) > MAX_DEPTH or any(not p or p.startswith(".") for p in parts):
        return False
    name = parts[-1].lower()
    return name.endswith(WEIGHT_SUFFIXES) or (name.endswith(SMALL_SUFFIXES) and size <= MAX_SMALL_FILE)


def model_files(directory: Path) -> dict[str, Path]:
    """The model's files in ``directory``, ``{relative posix path: path}``, sorted. Links are not
    followed (a linked file is listed as the link: callers that must stay inside a directory check
    where it points); 400 if there are more than :data:`MAX_FILES`."""
    found: dict[str, Path] = {}
    for top, dirs, names in os.walk(directory, followlinks=False):
        depth = len(Path(top).relative_to(directory).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and depth + 1 < MAX_DEPTH)
        for name in sorted(names):
            path = Path(top) / name
            rel = path.relative_to(directory).as_posix()
            try:
                size = path.stat().st_size if path.is_file() else -1
            except OSError:
                continue
            if size >= 0 and is_model_file(rel, size):
                found[rel] = path
                if len(found) > MAX_FILES:
                    raise BadRequest(f"{directory.name}: more than {MAX_FILES} model files")
    return dict(sorted(found.items()))
