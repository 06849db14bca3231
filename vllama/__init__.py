"""vllama: the Ollama server, API and CLI on the best engine for the machine.

The public modules, for backend authors and for apps that embed the server, are named in
``__all__``; everything else is internal and may change. Importing this package imports none
of them (and no engine library).
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vllama.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # the engine contract and what crosses it
    "engine",
    "types",
    "errors",
    # the toolkit engines are built from
    "batching",
    "streams",
    "chat_inputs",
    "tool_calls",
    # plugins and embedding
    "hookimpl",
    "hookspecs",
    "core",
    "testing",
]


def __getattr__(name: str) -> object:
    """``vllama.hookimpl``, imported on first use so that the CLI starts without pluggy."""
    if name == "hookimpl":
        from vllama.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'vllama' has no attribute {name!r}")
