"""vllama's vLLM backend. Importing this package does not import vLLM or torch."""

from __future__ import annotations

from collections.abc import Callable

from vllama import hookimpl
from vllama.engine import Backend
from vllama_vllm.backend import VllmBackend

__all__ = ["VllmBackend"]


@hookimpl
def register_backends(register: Callable[[type[Backend]], None]) -> None:
    register(VllmBackend)
