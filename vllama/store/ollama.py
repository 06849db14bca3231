"""Ollama's models: telling an Ollama store from vllama's, reading what Ollama's layers hold, and
adopting models (from Ollama's registry, or a whole Ollama store) into vllama's store.

Ollama and vllama lay a store out alike (``manifests/HOST/NAMESPACE/MODEL/TAG`` over
``blobs/sha256-<hex>``); they differ in the config blob. Ollama's always has ``rootfs`` (the image
spec requires it) and nothing about the weights' metadata; vllama's has what it read from the
weights and never ``rootfs``. A store holding a manifest whose config Ollama wrote is Ollama's.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from vllama.errors import BadRequest, NotFound
from vllama.names import ModelName
from vllama.store.describe import Description, describe_gguf
from vllama.store.store import ADAPTER, LICENSE, MESSAGES, MODEL, PARAMS, PROJECTOR, SYSTEM, TEMPLATE, Layer, Manifest, ModelStore
from vllama.types import Message, ModelRef

#: Layers that hold text, and the ones vllama keeps as they are (for the engines that use them).
TEXT_LAYERS = (TEMPLATE, SYSTEM, PARAMS, LICENSE, MESSAGES)
KEPT_LAYERS = (PROJECTOR,)

Progress = Callable[[str], None]


def is_ollama_store(root: Path) -> bool:
    """Does ``root`` hold a model whose config blob Ollama wrote? Only reads."""
    manifests = root / "manifests"
    if not manifests.is_dir():
        return False
    for path in manifests.glob("*/*/*/*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            manifest = msgspec.json.decode(path.read_bytes(), type=Manifest)
            config = json.loads((root / "blobs" / manifest.config.digest.replace(":", "-", 1)).read_bytes())
        except (OSError, ValueError, msgspec.DecodeError):
            continue
        if isinstance(config, dict) and "rootfs" in config:
            return True
    return False


@functools.lru_cache(maxsize=256)
def described_weights(path: Path, digest: str) -> Description:
    """What vllama records about a GGUF blob, read once per process (a blob never changes)."""
    return describe_gguf(path)


@dataclass
class OllamaLayers:
    """An Ollama model's layers in the terms of :meth:`ModelStore.create`."""

    weights: Layer
    template: str | None = None
    system: str | None = None
    parameters: dict[str, Any] | None = None
    license: list[str] = field(default_factory=list)
    messages: list[Message] | None = None
    kept: list[Layer] = field(default_factory=list)


def weights_layer(name: ModelName, layers: Iterable[Layer], model_format: str) -> Layer:
    """The one GGUF model layer; BadRequest naming the format if there is none (Ollama's
    safetensors ``tensor`` layers, an image-generation model), or if a LoRA adapter comes with it."""
    layers = list(layers)
    if any(layer.mediaType == ADAPTER for layer in layers):
        raise BadRequest(f"'{name.display}' has a LoRA adapter layer: adapters are not supported yet")
    models = [layer for layer in layers if layer.mediaType == MODEL]
    if len(models) == 1 and model_format.lower() in ("", "gguf"):
        return models[0]
    kinds = ", ".join(sorted({layer.mediaType.rsplit(".", 1)[-1] for layer in layers if layer.mediaType not in TEXT_LAYERS}))
    raise BadRequest(
        f"'{name.display}' has its weights in the {model_format or 'unknown'} format ({kinds} layers), "
        "which no vllama backend runs from Ollama's layout: vllama runs Ollama models whose weights are one GGUF layer"
    )


def read_layers(name: ModelName, layers: Iterable[Layer], model_format: str, read_text: Callable[[Layer], str]) -> OllamaLayers:
    """Sort an Ollama manifest's layers into weights, texts and the layers kept as they are."""
    layers = list(layers)
    out = OllamaLayers(weights_layer(name, layers, model_format))
    for layer in layers:
        media = layer.mediaType
        if media == TEMPLATE:
            out.template = read_text(layer)
        elif media == SYSTEM:
            out.system = read_text(layer)
        elif media == PARAMS:
            try:
                out.parameters = json.loads(read_text(layer))
            except ValueError:
                raise BadRequest(f"'{name.display}' has a params layer that is not JSON") from None
        elif media == LICENSE:
            out.license.append(read_text(layer))
        elif media == MESSAGES:
            out.messages = msgspec.json.decode(read_text(layer), type=list[Message])
        elif media in KEPT_LAYERS:
            out.kept.append(layer)
    return out


def adopt(
    store: ModelStore, name: ModelName, found: OllamaLayers, *, new_blobs: Iterable[str] = (), progress: Progress = lambda _: None
) -> ModelRef:
    """Write ``name`` into ``store`` from an Ollama model whose blobs ``store`` already holds: its
    GGUF described as vllama describes weights, the texts as layers, a projector kept."""
    return store.create(
        name,
        files={f"{name.model}.gguf": found.weights.digest},
        template=found.template,
        system=found.system,
        parameters=found.parameters,
        license=found.license or None,
        messages=found.messages,
        extra_layers=found.kept,
        new_blobs=new_blobs,
        progress=progress,
    )


@dataclass(frozen=True)
class Imported:
    """One model of an Ollama store, taken into vllama's."""

    name: str
    #: Blobs hard-linked (no copy) and blobs copied; blobs vllama already had count as neither.
    linked: int = 0
    copied: int = 0
    #: Why the model was left out ("" when it was imported).
    skipped: str = ""


def import_store(source: Path, store: ModelStore, progress: Progress = lambda _: None) -> list[Imported]:
    """Adopt every model of the Ollama store at ``source`` into ``store``: blobs hard-linked where
    the file system allows, copied otherwise, each verified; ``source`` is only read."""
    store.blobs.writable()
    ollama = ModelStore(source, read_only=True)
    if ollama.root.resolve() == store.root.resolve():
        raise BadRequest(f"{source} is the store to import into: set VLLAMA_MODELS to vllama's own store")
    out = []
    for name in ollama.names():
        progress(f"importing {name.display}")
        try:
            out.append(_import_one(ollama, store, name, progress))
        except (BadRequest, NotFound) as e:  # weights vllama cannot run, a blob that does not match or is missing
            out.append(Imported(name.display, skipped=e.message))
    return out


def _import_one(ollama: ModelStore, store: ModelStore, name: ModelName, progress: Progress) -> Imported:
    manifest = ollama.manifest(name)
    config = json.loads(ollama.blobs.require(manifest.config.digest).read_bytes())
    fmt = str(config.get("model_format", "")) if isinstance(config, dict) else ""
    weights_layer(name, manifest.layers, fmt)  # refuse before any blob is taken in
    new: list[str] = []
    linked = copied = 0
    try:
        for layer in manifest.layers:
            if layer.mediaType not in (MODEL, *TEXT_LAYERS, *KEPT_LAYERS) or store.blobs.has(layer.digest):
                continue
            progress(f"taking in {layer.digest}")
            if store.blobs.adopt_file(ollama.blobs.require(layer.digest), layer.digest, new):
                linked += 1
            else:
                copied += 1
        found = read_layers(name, manifest.layers, fmt, lambda layer: store.blobs.require(layer.digest).read_text())
        adopt(store, name, found, new_blobs=new)
    except BaseException:
        store.discard(new)  # what this model took in, unless another model uses it
        raise
    return Imported(name.display, linked, copied)
