"""The model store: Ollama-style manifests over content-addressed blobs.

A model exists exactly when its manifest exists, and the manifest is written last (by an
atomic rename) after every blob it names is in place: a crash never leaves a half model listed.

A directory that Ollama keeps (:func:`~vllama.store.ollama.is_ollama_store`) is read in place and
never written: no lock, no sweep, no partial file; its models are described from their GGUF weights.
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import msgspec

from vllama.errors import BadRequest, ModelNotFound, NotFound
from vllama.names import ModelName
from vllama.store.blobs import Blobs
from vllama.store.describe import (
    Description,
    describe_directory,
    describe_gguf,
    with_template,
)
from vllama.store.files import model_files
from vllama.store.lock import StoreLock
from vllama.types import Message, ModelDetails, ModelRef

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
MODEL = "application/vnd.ollama.image.model"
FILE = "application/vnd.vllama.image.file"
TEMPLATE = "application/vnd.ollama.image.template"
SYSTEM = "application/vnd.ollama.image.system"
PARAMS = "application/vnd.ollama.image.params"
LICENSE = "application/vnd.ollama.image.license"
MESSAGES = "application/vnd.ollama.image.messages"
PROJECTOR = "application/vnd.ollama.image.projector"
ADAPTER = "application/vnd.ollama.image.adapter"
TITLE = "org.opencontainers.image.title"

Progress = Callable[[str], None]
log = logging.getLogger("vllama.store")


class Layer(msgspec.Struct, omit_defaults=True):
    mediaType: str
    digest: str
    size: int
    annotations: dict[str, str] = {}


class Manifest(msgspec.Struct):
    config: Layer
    layers: list[Layer]
    schemaVersion: int = 2
    mediaType: str = MANIFEST_TYPE


class Config(msgspec.Struct, omit_defaults=True):
    """The config blob: Ollama's fields plus what vllama derives from the weights."""

    model_format: str
    model_family: str = ""
    model_families: list[str] | None = None
    model_type: str = ""
    file_type: str = ""
    info: dict[str, Any] = {}
    capabilities: list[str] = []
    #: The weights' own chat template (a Modelfile TEMPLATE layer overrides it).
    template: str = ""


class ModelStore:
    """Blobs and manifests under one directory (``VLLAMA_MODELS``).

    Reads and writes of manifests hold one lock (:class:`~vllama.store.lock.StoreLock`), so
    list, show, copy, delete and create each see a consistent store: a model is whole or absent,
    and a delete never removes a blob that a model written meanwhile uses. Copying large files
    in happens outside the lock."""

    def __init__(self, root: Path, *, read_only: bool | None = None) -> None:
        """``read_only``: None decides from the directory (an Ollama store is only read)."""
        from vllama.store.ollama import is_ollama_store

        self.root = Path(root)
        self.read_only = is_ollama_store(self.root) if read_only is None else read_only
        self.blobs = Blobs(self.root / "blobs", read_only=self.read_only)
        self._manifests = self.root / "manifests"
        self._snapshots = self.root / "snapshots"
        self._store_lock = StoreLock(self.root)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """The store's lock; a store that is only read is never locked (a lock is a write)."""
        with nullcontext() if self.read_only else self._store_lock():
            yield

    # -- reading --------------------------------------------------------------------

    def _manifest_path(self, name: ModelName) -> Path:
        path = self._manifests.joinpath(*name.parts)
        if self.read_only and not path.is_file():  # Ollama keeps a name's case on disk
            path = _case_insensitive(self._manifests, name.parts) or path
        return path

    def _read(self, name: ModelName) -> tuple[Manifest, bytes] | None:
        path = self._manifest_path(name)
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return msgspec.json.decode(raw, type=Manifest), raw

    def get(self, name: ModelName) -> ModelRef | None:
        """The installed model of that name, or None."""
        with self._lock():
            found = self._read(name)
            if found is None:
                return None
            manifest, raw = found
            return self._ref(name, manifest, raw)

    def require(self, name: ModelName) -> ModelRef:
        ref = self.get(name)
        if ref is None:
            raise ModelNotFound(name.display)
        return ref

    def _names(self) -> list[ModelName]:
        """The names of every manifest on disk (partial writes aside)."""
        if not self._manifests.is_dir():
            return []
        return [
            ModelName(*path.relative_to(self._manifests).parts)
            for path in self._manifests.glob("*/*/*/*")
            if path.is_file() and not path.name.startswith(".")
        ]

    def list(self) -> list[ModelRef]:
        """Every installed model, newest first."""
        out = []
        with self._lock():
            for name in self._names():
                try:
                    ref = self.get(name)
                except (NotFound, BadRequest, msgspec.DecodeError) as e:  # damaged outside vllama, or weights it cannot run
                    log.warning("skipping %s: %s", name.display, e)
                    continue
                if ref is not None:
                    out.append(ref)
        return sorted(out, key=lambda r: r.modified_at, reverse=True)

    def _ref(self, name: ModelName, manifest: Manifest, raw: bytes) -> ModelRef:
        config = msgspec.json.decode(self.blobs.require(manifest.config.digest).read_bytes(), type=Config)
        if not config.info:  # a config that Ollama wrote: what vllama records, read from the weights
            config = self._described(name, manifest, config)
        text = {layer.mediaType: self._text(layer) for layer in manifest.layers if layer.mediaType in (TEMPLATE, SYSTEM, PARAMS, MESSAGES)}
        digest = hashlib.sha256(raw).hexdigest()
        mtime = self._manifest_path(name).stat().st_mtime
        return ModelRef(
            name=name.display,
            format=config.model_format,
            path=str(self._weights_path(manifest, digest, config.model_format)),
            digest=digest,
            size=sum(layer.size for layer in manifest.layers) + manifest.config.size,
            details=ModelDetails(
                format=config.model_format,
                family=config.model_family,
                families=config.model_families,
                parameter_size=config.model_type,
                quantization_level=config.file_type,
            ),
            info=config.info,
            capabilities=with_template(config.capabilities, text.get(TEMPLATE, config.template)),
            parameters=json.loads(text[PARAMS]) if PARAMS in text else {},
            template=text.get(TEMPLATE, config.template),
            system=text.get(SYSTEM, ""),
            license=[self._text(layer) for layer in manifest.layers if layer.mediaType == LICENSE],
            messages=msgspec.json.decode(text[MESSAGES], type=list[Message]) if MESSAGES in text else [],
            modified_at=dt.datetime.fromtimestamp(mtime, dt.UTC).isoformat().replace("+00:00", "Z"),
        )

    def _described(self, name: ModelName, manifest: Manifest, config: Config) -> Config:
        """What vllama records, read from the GGUF of a model Ollama wrote; BadRequest if vllama cannot run it."""
        from vllama.store.ollama import described_weights, weights_layer

        model = weights_layer(name, manifest.layers, config.model_format)
        return _config(described_weights(self.blobs.require(model.digest), model.digest))

    def _text(self, layer: Layer) -> str:
        return self.blobs.require(layer.digest).read_text()

    def _weights_path(self, manifest: Manifest, digest: str, fmt: str) -> Path:
        models = [layer for layer in manifest.layers if layer.mediaType == MODEL]
        if models:
            return self.blobs.path(models[0].digest)
        return self._snapshot(manifest, digest)

    def _snapshot(self, manifest: Manifest, digest: str) -> Path:
        """A directory of links to the blobs, for engines that load a directory."""
        target = self._snapshots / digest
        if target.is_dir():
            return target
        self.blobs.writable()
        self._snapshots.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self._snapshots, prefix=".partial-"))
        for layer in manifest.layers:
            if layer.mediaType == FILE:
                link = tmp / layer.annotations[TITLE]
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(self.blobs.require(layer.digest))
        try:
            os.rename(tmp, target)
        except OSError:  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    # -- writing --------------------------------------------------------------------

    def manifest(self, name: ModelName) -> Manifest:
        """An installed model's manifest; 404 if there is none."""
        with self._lock():
            found = self._read(name)
        if found is None:
            raise ModelNotFound(name.display)
        return found[0]

    def names(self) -> builtins.list[ModelName]:
        """The names of the installed models, sorted."""
        with self._lock():
            return sorted(self._names(), key=lambda n: n.parts)

    def import_path(self, source: Path, progress: Progress = lambda _: None) -> dict[str, str]:
        """Copy a local GGUF file, or a model directory's files (:func:`~vllama.store.files.model_files`),
        into blobs: ``{filename: digest}``."""
        source = source.expanduser()
        if source.is_file():
            return self.import_files({source.name: source}, progress)
        if not source.is_dir():
            raise NotFound(f"no such file or directory: {source}")
        return self.import_files(model_files(source), progress)

    def import_files(
        self, files: Mapping[str, Path], progress: Progress = lambda _: None, new: builtins.list[str] | None = None
    ) -> dict[str, str]:
        """Copy files into blobs: ``{name: digest}``; digests the store did not hold are appended to ``new``."""
        self.blobs.writable()
        out = {}
        for rel, path in files.items():
            progress(f"copying file {rel}")
            out[rel] = self.blobs.import_file(path, new)
        return out

    def discard(self, digests: Iterable[str]) -> None:
        """Remove those of ``digests`` that no model uses (what a failed create wrote, or the
        layers of a replaced model), and snapshots no model refers to."""
        self.blobs.writable()
        with self._lock():
            used, snapshots = self._in_use()
            for digest in set(digests) - used:
                self.blobs.remove(digest)
            self._remove_snapshots_except(snapshots)

    def create(
        self,
        name: ModelName,
        *,
        files: Mapping[str, str] | None = None,
        base: ModelRef | None = None,
        parameters: Mapping[str, Any] | None = None,
        template: str | None = None,
        system: str | None = None,
        license: builtins.list[str] | None = None,
        messages: builtins.list[Message] | None = None,
        progress: Progress = lambda _: None,
        new_blobs: Iterable[str] = (),
        extra_layers: Iterable[Layer] = (),
    ) -> ModelRef:
        """Write a model from uploaded blobs (``files``) or on top of ``base``; Ollama's
        create semantics: given fields replace the base model's. ``extra_layers`` (a vision
        projector: blobs already stored) are kept as they are. If it fails, the blobs it wrote,
        and ``new_blobs`` (those the caller wrote for it), are removed unless a model uses them."""
        self.blobs.writable()
        written = list(new_blobs)
        with self._lock():
            try:
                return self._create(
                    name, files, base, parameters, template, system, license, messages, list(extra_layers), progress, written
                )
            except BaseException:
                self.discard(written)
                raise

    def _create(
        self,
        name: ModelName,
        files: Mapping[str, str] | None,
        base: ModelRef | None,
        parameters: Mapping[str, Any] | None,
        template: str | None,
        system: str | None,
        license: builtins.list[str] | None,
        messages: builtins.list[Message] | None,
        extra_layers: builtins.list[Layer],
        progress: Progress,
        written: builtins.list[str],
    ) -> ModelRef:
        if files:
            weights, config = self._weights_layers(files, progress)
        elif base is not None:
            manifest, _ = self._read_ref(base)
            weights = [layer for layer in manifest.layers if layer.mediaType in (MODEL, FILE)]
            config = msgspec.json.decode(self.blobs.require(manifest.config.digest).read_bytes(), type=Config)
        else:
            raise BadRequest("neither 'from' nor 'files' was specified")
        if base is not None:
            parameters = {**base.parameters, **(parameters or {})} if parameters is not None else base.parameters
            template = base.template if template is None and base.template != config.template else template
            system = base.system if system is None else system
            license = base.license if license is None else license
            messages = base.messages if messages is None else messages
        layers = list(weights) + extra_layers
        for media, value in (
            (TEMPLATE, template),
            (SYSTEM, system),
            (PARAMS, json.dumps(parameters) if parameters else None),
            (MESSAGES, msgspec.json.encode(messages).decode() if messages else None),
        ):
            if value:
                layers.append(self._text_layer(media, value, progress, written))
        for text in license or ():
            layers.append(self._text_layer(LICENSE, text, progress, written))
        config_bytes = msgspec.json.encode(config)
        config_layer = Layer(CONFIG_TYPE, self._write_new(config_bytes, written), len(config_bytes))
        progress("writing manifest")
        self._replace_manifest(name, Manifest(config=config_layer, layers=layers))
        progress("success")
        return self.require(name)

    def _read_ref(self, ref: ModelRef) -> tuple[Manifest, bytes]:
        from vllama.names import parse_name

        found = self._read(parse_name(ref.name))
        if found is None:
            raise ModelNotFound(ref.name)
        return found

    def _weights_layers(self, files: Mapping[str, str], progress: Progress) -> tuple[builtins.list[Layer], Config]:
        for rel in files:
            if rel.startswith("/") or ".." in Path(rel).parts or not rel:
                raise BadRequest(f"invalid file name {rel!r}")
        ggufs = [rel for rel in files if rel.lower().endswith(".gguf")]
        if len(files) == 1 and (ggufs or _is_gguf(self.blobs.require(next(iter(files.values()))))):
            digest = next(iter(files.values()))
            path = self.blobs.require(digest)
            progress("parsing GGUF")
            desc = describe_gguf(path)
            progress(f"using existing layer {digest}")
            return [Layer(MODEL, digest, path.stat().st_size)], _config(desc)
        if ggufs:
            raise BadRequest("a GGUF model is one .gguf file; got several files")
        progress("reading model metadata")
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".partial-") as tmp:
            for rel, digest in files.items():
                link = Path(tmp) / rel
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(self.blobs.require(digest))
            desc = describe_directory(Path(tmp))
        layers = []
        for rel, digest in sorted(files.items()):
            progress(f"using existing layer {digest}")
            layers.append(Layer(FILE, digest, self.blobs.require(digest).stat().st_size, {TITLE: rel}))
        return layers, _config(desc)

    def _write_new(self, data: bytes, written: builtins.list[str]) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.blobs.has(digest):
            written.append(digest)
        return self.blobs.write_bytes(data)

    def _text_layer(self, media: str, text: str, progress: Progress, written: builtins.list[str]) -> Layer:
        data = text.encode()
        existed = self.blobs.has("sha256:" + hashlib.sha256(data).hexdigest())
        digest = self._write_new(data, written)
        progress(f"{'using existing' if existed else 'creating new'} layer {digest}")
        return Layer(media, digest, len(data))

    def _write_manifest(self, name: ModelName, manifest: Manifest) -> None:
        path = self._manifest_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.encode(manifest))
        os.replace(tmp, path)

    def _replace_manifest(self, name: ModelName, manifest: Manifest) -> None:
        """Write ``name``'s manifest; the blobs of a model it replaces that no model uses now go."""
        old = self._read(name)
        self._write_manifest(name, manifest)
        if old is not None:
            self.discard(_digests(old[0]))

    def copy(self, source: ModelName, destination: ModelName) -> None:
        self.blobs.writable()
        with self._lock():
            found = self._read(source)
            if found is None:
                raise NotFound(f'model "{source.display}" not found')
            self._replace_manifest(destination, found[0])

    def delete(self, name: ModelName) -> None:
        """Remove a model, and those of its blobs that no other model uses."""
        self.blobs.writable()
        with self._lock():
            found = self._read(name)
            if found is None:
                raise ModelNotFound(name.display)
            self._manifest_path(name).unlink()
            self.discard(_digests(found[0]))

    def sweep(self, *, prune: bool = True) -> None:
        """Remove what an interrupted write left: partial files, snapshots no model uses and,
        with ``prune``, blobs no model uses (as Ollama prunes at start; ``VLLAMA_NOPRUNE``
        keeps them). Run at start, before any request. A store that is only read is left alone."""
        if self.read_only:
            log.info("%s is an Ollama store: its models are read in place, nothing is written there", self.root)
            return
        with self._lock():
            for folder in (self.root, self.blobs.root, self._snapshots):
                self._remove_partials(folder.glob(".partial-*"))
            if self._manifests.is_dir():
                self._remove_partials(self._manifests.rglob(".partial-*"))
            used, snapshots = self._in_use()
            if prune:
                for digest in self.blobs.all() - used:
                    log.info("pruning unused blob %s", digest)
                    self.blobs.remove(digest)
            self._remove_snapshots_except(snapshots)

    @staticmethod
    def _remove_partials(paths: Iterable[Path]) -> None:
        for path in list(paths):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _remove_snapshots_except(self, keep: set[str]) -> None:
        if self._snapshots.is_dir():
            for snap in self._snapshots.iterdir():
                if not snap.name.startswith(".") and snap.name not in keep:
                    shutil.rmtree(snap, ignore_errors=True)

    def _in_use(self) -> tuple[set[str], set[str]]:
        """Blob digests and snapshot names that installed models refer to (manifests only:
        no config blob is read and no snapshot made)."""
        used: set[str] = set()
        snapshots: set[str] = set()
        for name in self._names():
            try:
                found = self._read(name)
            except msgspec.DecodeError:  # damaged outside vllama: its blobs cannot be known
                continue
            if found is not None:
                used |= _digests(found[0])
                snapshots.add(hashlib.sha256(found[1]).hexdigest())
        return used, snapshots


def _case_insensitive(root: Path, parts: Iterable[str]) -> Path | None:
    """The path under ``root`` whose parts equal ``parts`` ignoring case, if there is one."""
    path = root
    for part in parts:
        try:
            path = next(p for p in path.iterdir() if p.name.lower() == part)
        except (StopIteration, OSError):
            return None
    return path if path.is_file() else None


def _digests(manifest: Manifest) -> set[str]:
    return {manifest.config.digest, *(layer.digest for layer in manifest.layers)}


def _is_gguf(path: Path) -> bool:
    from vllama.gguf import is_gguf

    return is_gguf(path)


def _config(desc: Description) -> Config:
    d = desc.details
    return Config(
        model_format=desc.format,
        model_family=d.family,
        model_families=d.families,
        model_type=d.parameter_size,
        file_type=d.quantization_level,
        info=desc.info,
        capabilities=desc.capabilities,
        template=desc.template,
    )
