"""Ollama-style model names: ``[host/][namespace/]model[:tag][@digest]``.

``llama3.2`` is ``llama3.2:latest`` is ``registry.ollama.ai/library/llama3.2:latest``.
Names compare case-insensitively and are taken as given (never stripped). Every part is checked against Ollama's character rules,
which also guarantees that no name can point outside the model store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vllama.errors import InvalidName

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}")
_MODEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")
_TAG = _MODEL
_DIGEST = re.compile(r"sha256[:-][0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class ModelName:
    """A parsed, valid model name."""

    host: str
    namespace: str
    model: str
    tag: str
    digest: str = ""

    @property
    def display(self) -> str:
        """The shortest form, as /api/tags and /api/ps print it: ``llama3.2:latest``."""
        if self.host.lower() != DEFAULT_HOST:
            prefix = f"{self.host}/{self.namespace}/"
        elif self.namespace.lower() != DEFAULT_NAMESPACE:
            prefix = f"{self.namespace}/"
        else:
            prefix = ""
        return f"{prefix}{self.model}:{self.tag}"

    @property
    def full(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def parts(self) -> tuple[str, str, str, str]:
        """Lower-cased (host, namespace, model, tag): the store's key and its path on disk."""
        return (self.host.lower(), self.namespace.lower(), self.model.lower(), self.tag.lower())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelName) and self.parts == other.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __str__(self) -> str:
        return self.display


def _shown(text: str) -> str:
    """The name as an error message quotes it: at most 100 characters."""
    return repr(text if len(text) <= 100 else text[:100] + "...")


def parse_name(text: str) -> ModelName:
    """Parse and validate a model name; raise :class:`InvalidName` with the reason."""
    if not isinstance(text, str) or not text:
        raise InvalidName("model is required")
    raw = text  # as given: whitespace anywhere makes the name invalid, it is never stripped
    for scheme in ("https://", "http://"):
        if raw.lower().startswith(scheme):
            raw = raw[len(scheme) :]
    digest = ""
    if "@" in raw:
        raw, digest = raw.rsplit("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidName(f"invalid model name {_shown(text)}: bad digest")
    tag = DEFAULT_TAG
    slash = raw.rfind("/")
    colon = raw.rfind(":")
    if colon > slash:
        raw, tag = raw[:colon], raw[colon + 1 :]
    pieces = raw.split("/")
    if len(pieces) == 1:
        host, namespace, model = DEFAULT_HOST, DEFAULT_NAMESPACE, pieces[0]
    elif len(pieces) == 2:
        host, (namespace, model) = DEFAULT_HOST, pieces
    elif len(pieces) == 3:
        host, namespace, model = pieces
    else:
        raise InvalidName(f"invalid model name {_shown(text)}: too many '/' separators")
    if host.lower() == "huggingface.co":
        host = "hf.co"
    for value, pattern, what in (
        (host, _HOST, "host"),
        (namespace, _NAMESPACE, "namespace"),
        (model, _MODEL, "model"),
        (tag, _TAG, "tag"),
    ):
        if not pattern.fullmatch(value):
            raise InvalidName(f"invalid model name {_shown(text)}: bad {what} {_shown(value)}")
    if ".." in host:
        raise InvalidName(f"invalid model name {_shown(text)}: bad host {_shown(host)}")
    return ModelName(host, namespace, model, tag, digest.replace("-", ":", 1) if digest else "")
