"""vllama's llama.cpp backend. Importing this package does not import llama.cpp."""

from __future__ import annotations

from collections.abc import Callable

from vllama import hookimpl
from vllama.engine import Backend
from vllama_llamacpp.backend import LlamaCppBackend
from vllama_llamacpp.starter import resolve_model

__all__ = ["LlamaCppBackend", "resolve_model"]


@hookimpl
def register_backends(register: Callable[[type[Backend]], None]) -> None:
    register(LlamaCppBackend)
