"""vllama: the Ollama server, API and CLI on the best engine for the machine."""

from vllama.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
