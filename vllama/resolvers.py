"""The built-in model resolver: the local model store."""

from __future__ import annotations

from vllama.hookspecs import hookimpl
from vllama.names import ModelName
from vllama.store import ModelStore
from vllama.types import ModelRef


@hookimpl(trylast=True)
def resolve_model(name: ModelName, store: ModelStore) -> ModelRef | None:
    """Installed models, by name (case-insensitive)."""
    return store.get(name)
