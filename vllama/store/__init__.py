"""The model store: content-addressed blobs and Ollama-style manifests under VLLAMA_MODELS."""

from vllama.store.store import ModelStore

__all__ = ["ModelStore"]
