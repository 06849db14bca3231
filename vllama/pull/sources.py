"""What a model name points at on the Hugging Face Hub."""

from __future__ import annotations

import msgspec

from vllama.names import DEFAULT_HOST, DEFAULT_NAMESPACE, DEFAULT_TAG, ModelName

HF_HOST = "hf.co"


class GgufSource(msgspec.Struct, frozen=True):
    """One GGUF file of a repo: ``hf.co/ORG/REPO:TAG``, the tag a quant, a file name or ``latest``."""

    repo: str
    tag: str


class SnapshotSource(msgspec.Struct, frozen=True):
    """A safetensors (or MLX) model directory: ``ORG/REPO[:REVISION]``; None is the default branch."""

    repo: str
    revision: str | None


Source = GgufSource | SnapshotSource


def hub_source(name: ModelName) -> Source | None:
    """The hub source a name spells out, or None for names that are not hub repos (short names)."""
    repo = f"{name.namespace}/{name.model}"
    if name.host.lower() == HF_HOST:
        return GgufSource(repo, name.tag)
    if name.host.lower() == DEFAULT_HOST and name.namespace.lower() != DEFAULT_NAMESPACE:
        return SnapshotSource(repo, None if name.tag.lower() == DEFAULT_TAG else name.tag)
    return None
