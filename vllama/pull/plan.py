"""What a pull downloads, and from where.

Where a name is pulled from:

- ``hf.co/ORG/REPO[:QUANT]`` and ``ORG/REPO[:REVISION]``: the Hugging Face Hub (one GGUF file, or a
  safetensors or MLX snapshot).
- A name that spells out a registry host (``registry.ollama.ai/library/llama3.2``,
  ``registry.ollama.ai/USER/MODEL``, ``HOST/NAMESPACE/MODEL``): that registry, speaking Ollama's protocol.
- A short name (``llama3.2``, ``qwen2.5:7b``, ``library/llama3.2``): Ollama's registry, falling back
  to vllama's library when the registry does not have the name or cannot be reached. A name the
  library lists comes from the library's Hub source first where this machine prefers another
  format than GGUF (the registry's: safetensors on NVIDIA, MLX on Apple silicon), where no installed
  backend runs GGUF, or with ``VLLAMA_SHORT_NAMES=library``; ``VLLAMA_SHORT_NAMES=registry`` asks the
  registry first on every machine.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
from dataclasses import dataclass

import msgspec

from vllama.config import Settings
from vllama.errors import BadRequest, NotFound
from vllama.names import DEFAULT_HOST, ModelName, parse_name
from vllama.pull import hub, library, registry
from vllama.pull.sources import HF_HOST, GgufSource, Source, hub_source
from vllama.selection import install_hint
from vllama.store.ollama import weights_layer
from vllama.store.store import Manifest
from vllama.types import Hardware

log = logging.getLogger("vllama.pull")

#: The quant an ``hf.co/ORG/REPO`` name (tag ``latest``) pulls, and the ones tried after it, in
#: order, when the repo does not have it: 4-bit first, then larger, then smaller.
DEFAULT_QUANTS = (
    "Q4_K_M",
    "Q4_K_S",
    "Q4_0",
    "Q4_1",
    "IQ4_XS",
    "IQ4_NL",
    "Q5_K_M",
    "Q5_K_S",
    "Q5_0",
    "Q6_K",
    "Q8_0",
    "BF16",
    "F16",
    "Q3_K_M",
    "Q3_K_L",
    "Q3_K_S",
    "Q2_K",
    "F32",
)

#: What engines read from a model directory besides ``*.safetensors``: config, tokenizer, chat
#: template, processor and sentence-transformers (pooling) files.
SNAPSHOT_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "tekken.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "chat_template.jinja",
        "chat_template.json",
        "preprocessor_config.json",
        "processor_config.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
    }
)
_POOLING = re.compile(r"\d+_Pooling/config\.json")
_SPLIT = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)
_ASK = "name a Hugging Face repository instead: hf.co/ORG/REPO:QUANT for a GGUF file, ORG/REPO for safetensors weights"


class Plan(msgspec.Struct, frozen=True):
    """The repo at one commit, and the files to download from it."""

    listing: hub.Listing
    files: tuple[hub.RemoteFile, ...]


@dataclass(frozen=True)
class RegistryPlan:
    """A model of an Ollama registry: where it is, and its manifest."""

    base: str
    name: ModelName
    manifest: Manifest
    model_format: str


@dataclass(frozen=True)
class Where:
    """What a pull may use besides the name: the machine, the settings, and the formats installed backends run."""

    hardware: Hardware
    settings: Settings
    formats: frozenset[str]
    insecure: bool = False


def plan_pull(name: ModelName, text: str, where: Where) -> Plan | RegistryPlan:
    """Plan a pull from the Hub or a registry (see the module's rule); raises NotFound or BadRequest
    before anything is downloaded."""
    if name.host.lower() != HF_HOST and (name.host.lower() != DEFAULT_HOST or _names_host(text)):
        return registry_plan(name, where)
    if hub_source(name) is not None:
        return make_plan(name, text, where.hardware)
    if (entry := library.lookup(name)) is None:
        return registry_plan(name, where)
    prefers_library = where.settings.short_names == "library" or (
        where.settings.short_names == "auto" and not isinstance(hub_source(parse_name(library.choose(entry, where.hardware))), GgufSource)
    )
    if prefers_library or "gguf" not in where.formats:
        return make_plan(name, text, where.hardware)
    try:
        return registry_plan(name, where)
    except (NotFound, registry.RegistryUnreachable) as e:
        log.info("pulling %s from vllama's library: %s", name.display, e)
        return make_plan(name, text, where.hardware)


def registry_plan(name: ModelName, where: Where) -> RegistryPlan:
    """Read the model's manifest and config from its registry, and check that a backend here runs its weights."""
    base = registry.base_url(name, where.settings.registry, insecure=where.insecure)
    with registry.client() as http:
        manifest = registry.fetch_manifest(http, base, name)
        config = json.loads(registry.fetch_small(http, base, name, manifest.config.digest))
    fmt = str(config.get("model_format", "")) if isinstance(config, dict) else ""
    weights_layer(name, manifest.layers, fmt)
    if "gguf" not in where.formats:
        raise BadRequest(f"'{name.display}' has GGUF weights, and no installed backend runs gguf models{install_hint('gguf')}")
    return RegistryPlan(base, name, manifest, fmt or "gguf")


def _names_host(text: str) -> bool:
    """Does the name as typed start with a host (three parts: ``HOST/NAMESPACE/MODEL``)?"""
    for scheme in ("https://", "http://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
    return text.split("@", 1)[0].count("/") == 2


def source_of(name: ModelName, hardware: Hardware) -> Source | None:
    """The hub source of a name: spelled out (``hf.co/...``, ``ORG/REPO``), or the library's for this hardware."""
    source = hub_source(name)
    if source is None and (entry := library.lookup(name)) is not None:
        source = hub_source(parse_name(library.choose(entry, hardware)))
    return source


def make_plan(name: ModelName, text: str, hardware: Hardware) -> Plan:
    """List the source repo and choose its files; raises NotFound or BadRequest before anything is downloaded."""
    source = source_of(name, hardware)
    if source is None:
        raise NotFound(f"pull model manifest: '{text}' names no Hugging Face repository and is not in vllama's model library; {_ASK}")
    if isinstance(source, GgufSource):
        listing = hub.list_files(source.repo, None)
        return Plan(listing, (pick_gguf(listing, source.tag),))
    listing = hub.list_files(source.repo, source.revision)
    return Plan(listing, pick_snapshot(listing))


def pick_gguf(listing: hub.Listing, tag: str) -> hub.RemoteFile:
    """The GGUF file a tag names: a quant (case-insensitive, as a whole word of the file name), an
    exact file name, or for ``latest`` the first of DEFAULT_QUANTS the repo has."""
    ggufs = [f for f in listing.files if f.path.lower().endswith(".gguf") and not _base(f).startswith("mmproj")]
    if not ggufs:
        raise BadRequest(f"'{listing.repo}' has no GGUF files; to pull its safetensors weights, name it without hf.co/: " + listing.repo)
    single = [f for f in ggufs if not _SPLIT.search(f.path)]
    if tag.lower() == "latest":
        found = next((m for q in DEFAULT_QUANTS if (m := _with_quant(single, q))), single or ggufs)
    elif tag.lower().endswith(".gguf"):
        found = [f for f in ggufs if _base(f) == tag.lower()]
    else:
        found = _with_quant(ggufs, tag)
    chosen = [f for f in found if not _SPLIT.search(f.path)]
    if not chosen:
        if found:
            raise BadRequest(
                f"the {tag} GGUF of '{listing.repo}' is split into several files, which vllama cannot pull; choose another quant"
            )
        names = ", ".join(sorted(posixpath.basename(f.path) for f in ggufs)[:12])
        raise NotFound(f"pull model manifest: '{listing.repo}' has no GGUF file for the tag '{tag}'; it has: {names}")
    return min(chosen, key=lambda f: (f.path.count("/"), len(f.path), f.path))


def pick_snapshot(listing: hub.Listing) -> tuple[hub.RemoteFile, ...]:
    """The files an engine loads: SNAPSHOT_FILES and the top-level ``*.safetensors`` (Mistral's
    ``consolidated*.safetensors`` duplicate is left out when the usual shards are there)."""
    weights = [f for f in listing.files if "/" not in f.path and f.path.endswith(".safetensors")]
    if any(not f.path.startswith("consolidated") for f in weights):
        weights = [f for f in weights if not f.path.startswith("consolidated")]
    if not weights or not any(f.path == "config.json" for f in listing.files):
        has_gguf = any(f.path.lower().endswith(".gguf") for f in listing.files)
        raise BadRequest(
            f"'{listing.repo}' is not a safetensors model (it needs config.json and *.safetensors weights)"
            + (f"; to pull one of its GGUF files, name it hf.co/{listing.repo}:QUANT" if has_gguf else "")
        )
    others = [f for f in listing.files if f.path in SNAPSHOT_FILES or _POOLING.fullmatch(f.path)]
    return tuple(sorted(others + weights, key=lambda f: f.path))


def _base(f: hub.RemoteFile) -> str:
    return posixpath.basename(f.path).lower()


def _with_quant(files: list[hub.RemoteFile], quant: str) -> list[hub.RemoteFile]:
    word = re.compile(rf"(?<![a-z0-9]){re.escape(quant.lower())}(?![a-z0-9_])")
    return [f for f in files if word.search(_base(f))]
