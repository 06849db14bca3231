"""The curated library: short names (``qwen2.5:0.5b``) mapped to one Hugging Face source per
weight format, so that the same name pulls the right weights for every engine.

Sources are written as a user could type them: ``hf.co/ORG/REPO:QUANT`` for one GGUF file,
``ORG/REPO`` for a safetensors (or MLX) snapshot. The repositories are well-known public ones;
nothing here checks that they still exist.
"""

from __future__ import annotations

import msgspec

from vllama.errors import BadRequest
from vllama.names import DEFAULT_HOST, DEFAULT_NAMESPACE, ModelName, parse_name
from vllama.pull.sources import GgufSource, SnapshotSource, hub_source
from vllama.types import Hardware


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """Where one library model comes from, per format (None where no such repo exists)."""

    gguf: str | None = None
    safetensors: str | None = None
    mlx: str | None = None


LIBRARY: dict[str, Entry] = {
    "smollm2:135m": Entry(
        gguf="hf.co/bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M",
        safetensors="HuggingFaceTB/SmolLM2-135M-Instruct",
        mlx="mlx-community/SmolLM2-135M-Instruct",
    ),
    "smollm2:360m": Entry(
        gguf="hf.co/bartowski/SmolLM2-360M-Instruct-GGUF:Q4_K_M",
        safetensors="HuggingFaceTB/SmolLM2-360M-Instruct",
        mlx="mlx-community/SmolLM2-360M-Instruct",
    ),
    "smollm2:1.7b": Entry(
        gguf="hf.co/bartowski/SmolLM2-1.7B-Instruct-GGUF:Q4_K_M",
        safetensors="HuggingFaceTB/SmolLM2-1.7B-Instruct",
        mlx="mlx-community/SmolLM2-1.7B-Instruct-4bit",
    ),
    "qwen2.5:0.5b": Entry(
        gguf="hf.co/bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M",
        safetensors="Qwen/Qwen2.5-0.5B-Instruct",
        mlx="mlx-community/Qwen2.5-0.5B-Instruct-4bit",
    ),
    "qwen2.5:1.5b": Entry(
        gguf="hf.co/bartowski/Qwen2.5-1.5B-Instruct-GGUF:Q4_K_M",
        safetensors="Qwen/Qwen2.5-1.5B-Instruct",
        mlx="mlx-community/Qwen2.5-1.5B-Instruct-4bit",
    ),
    "qwen2.5:7b": Entry(
        gguf="hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M",
        safetensors="Qwen/Qwen2.5-7B-Instruct",
        mlx="mlx-community/Qwen2.5-7B-Instruct-4bit",
    ),
    "llama3.2:1b": Entry(
        gguf="hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
        safetensors="unsloth/Llama-3.2-1B-Instruct",
        mlx="mlx-community/Llama-3.2-1B-Instruct-4bit",
    ),
    "llama3.2:3b": Entry(
        gguf="hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M",
        safetensors="unsloth/Llama-3.2-3B-Instruct",
        mlx="mlx-community/Llama-3.2-3B-Instruct-4bit",
    ),
    "mistral:7b": Entry(
        gguf="hf.co/bartowski/Mistral-7B-Instruct-v0.3-GGUF:Q4_K_M",
        safetensors="unsloth/mistral-7b-instruct-v0.3",
        mlx="mlx-community/Mistral-7B-Instruct-v0.3-4bit",
    ),
    "qwen3:0.6b": Entry(
        gguf="hf.co/unsloth/Qwen3-0.6B-GGUF:Q4_K_M",
        safetensors="Qwen/Qwen3-0.6B",
        mlx="mlx-community/Qwen3-0.6B-4bit",
    ),
    "qwen3:1.7b": Entry(
        gguf="hf.co/unsloth/Qwen3-1.7B-GGUF:Q4_K_M",
        safetensors="Qwen/Qwen3-1.7B",
        mlx="mlx-community/Qwen3-1.7B-4bit",
    ),
    "qwen3:4b": Entry(
        gguf="hf.co/unsloth/Qwen3-4B-GGUF:Q4_K_M",
        safetensors="Qwen/Qwen3-4B",
        mlx="mlx-community/Qwen3-4B-4bit",
    ),
    "qwen3:8b": Entry(
        gguf="hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M",
        safetensors="Qwen/Qwen3-8B",
        mlx="mlx-community/Qwen3-8B-4bit",
    ),
    "nomic-embed-text:latest": Entry(
        gguf="hf.co/nomic-ai/nomic-embed-text-v1.5-GGUF:F16",
        safetensors="nomic-ai/nomic-embed-text-v1.5",
    ),
    "all-minilm:latest": Entry(
        gguf="hf.co/leliuga/all-MiniLM-L6-v2-GGUF:Q8_0",
        safetensors="sentence-transformers/all-MiniLM-L6-v2",
    ),
}

#: The size a bare name (tag ``latest``) means, as in Ollama's library.
LATEST: dict[str, str] = {"smollm2": "1.7b", "qwen2.5": "7b", "llama3.2": "3b", "mistral": "7b", "qwen3": "8b"}

#: Formats in order of preference for the hardware: vLLM on NVIDIA, MLX on Apple silicon, else llama.cpp.
_NVIDIA = ("safetensors", "gguf")
_METAL = ("mlx", "gguf", "safetensors")
_CPU = ("gguf", "safetensors")


def _key(name: ModelName) -> str | None:
    if name.host.lower() != DEFAULT_HOST or name.namespace.lower() != DEFAULT_NAMESPACE:
        return None
    model, tag = name.model.lower(), name.tag.lower()
    if tag == "latest" and model in LATEST:
        tag = LATEST[model]
    return f"{model}:{tag}"


def lookup(name: ModelName) -> Entry | None:
    """The library entry for a short name, or None."""
    key = _key(name)
    return LIBRARY.get(key) if key else None


def choose(entry: Entry, hardware: Hardware) -> str:
    """The entry's source for this machine: the first of the preferred formats that it has."""
    order = _NVIDIA if hardware.has_nvidia else _METAL if hardware.has_metal else _CPU
    sources = {"gguf": entry.gguf, "safetensors": entry.safetensors, "mlx": entry.mlx}
    return next(source for fmt in order if (source := sources[fmt]))


def register(name: str, entry: Entry) -> None:
    """Add (or replace) a short name, e.g. from a plugin module at import time.

    ``name`` is a short name such as ``phi4:mini``. ``entry.gguf`` must be an ``hf.co/ORG/REPO:QUANT``
    name, ``entry.safetensors`` and ``entry.mlx`` ``ORG/REPO`` names.
    """
    key = _key(parse_name(name))
    if key is None:
        raise BadRequest(f"{name!r} is not a short library name (it has a host or a namespace)")
    if not (entry.gguf or entry.safetensors or entry.mlx):
        raise BadRequest(f"library entry {name!r} names no source")
    if entry.gguf and not isinstance(hub_source(parse_name(entry.gguf)), GgufSource):
        raise BadRequest(f"{entry.gguf!r} is not a GGUF source: write it as hf.co/ORG/REPO:QUANT")
    for source in (entry.safetensors, entry.mlx):
        if source and not isinstance(hub_source(parse_name(source)), SnapshotSource):
            raise BadRequest(f"{source!r} is not a model repository: write it as ORG/REPO")
    LIBRARY[key] = entry
