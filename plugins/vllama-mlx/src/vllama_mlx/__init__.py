"""vllama's MLX backend. Importing this package does not import MLX."""

from __future__ import annotations

from collections.abc import Callable

from vllama import hookimpl
from vllama.engine import Backend
from vllama_mlx.backend import MlxBackend

__all__ = ["MlxBackend"]


@hookimpl
def register_backends(register: Callable[[type[Backend]], None]) -> None:
    register(MlxBackend)
