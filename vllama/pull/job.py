"""One pull: planned before anything is streamed (so that errors get their real status), then run
in a thread of its own whose progress is read as an async stream.

Hub files are downloaded into the hub cache, then verified while they are copied into the store's
blobs; registry layers are downloaded beside the store's blobs and verified before they become
blobs. The manifest is written last: a model that is not fully pulled is never listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import httpx

from vllama.errors import BadRequest, VllamaError
from vllama.names import ModelName, parse_name
from vllama.pull import hub, registry
from vllama.pull.plan import Plan, RegistryPlan, Where, plan_pull
from vllama.pull.progress import FileProgress, Progress
from vllama.store import ModelStore
from vllama.store.ollama import KEPT_LAYERS, TEXT_LAYERS, adopt, read_layers
from vllama.store.store import MODEL, Layer

if TYPE_CHECKING:
    from vllama.core import Vllama

Emit = Callable[[Progress], None]


class _Done(NamedTuple):
    """The end of a pull's progress, with its error if it failed."""

    error: Exception | None


async def prepare(v: Vllama, text: str, *, insecure: bool = False) -> PullJob:
    """Plan a pull of ``text``: a model a plugin provides, files to download from the hub, or
    layers from an Ollama registry (over HTTP with ``insecure``)."""
    name = parse_name(text)
    return await asyncio.to_thread(_prepare, v, name, text, insecure)


def _prepare(v: Vllama, name: ModelName, text: str, insecure: bool) -> PullJob:
    v.store.blobs.writable()
    if _provided(v, name):
        return PullJob(v.store, name, None)
    return PullJob(v.store, name, plan_pull(name, text, Where(v.hardware, v.settings, _formats(v), insecure)))


def _formats(v: Vllama) -> frozenset[str]:
    """The weight formats that a backend here runs (only the forced one's with ``VLLAMA_BACKEND``)."""
    forced = v.backends.get(v.settings.backend or "")
    backends = [forced] if forced is not None else list(v.backends.values())
    return frozenset().union(*(b.formats for b in backends))


def _provided(v: Vllama, name: ModelName) -> bool:
    """Whether a plugin's resolver provides the model (the built-in store lookup aside); the
    llama.cpp plugin installs its offline starter ``smollm2:135m`` this way."""
    builtin = v.pm.get_plugin("vllama.resolvers")
    resolve = v.pm.subset_hook_caller("resolve_model", remove_plugins=[builtin] if builtin is not None else [])
    return resolve(name=name, store=v.store, hardware=v.hardware) is not None


class PullJob:
    """A planned pull. ``plan`` is None when a plugin already provided the model."""

    def __init__(self, store: ModelStore, name: ModelName, plan: Plan | RegistryPlan | None) -> None:
        self.store, self.name, self.plan = store, name, plan
        self._cancelled = threading.Event()

    async def progress(self) -> AsyncIterator[Progress]:
        """Run the pull, yielding its progress; raises its error at the end. Closing the iterator
        early (the client went away) stops the download.

        The pull runs in a thread of its own: a download may take hours, and must not hold one
        of the threads that the event loop's ``to_thread`` calls share."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Progress | _Done] = asyncio.Queue()

        def put(item: Progress | _Done) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                self._run(put)
            except Exception as exc:
                put(_Done(exc))
            else:
                put(_Done(None))

        threading.Thread(target=work, name=f"pull {self.name.display}", daemon=True).start()
        try:
            while not isinstance(item := await queue.get(), _Done):
                yield item
            if item.error is not None:
                raise item.error
        finally:
            self._cancelled.set()

    def _run(self, emit: Emit) -> None:
        emit(Progress(status="pulling manifest"))
        if isinstance(plan := self.plan, RegistryPlan):
            self._pull_layers(plan, emit)
        elif plan is not None:
            downloaded = [(f, self._download(plan.listing, f, emit)) for f in plan.files]
            emit(Progress(status="verifying sha256 digest"))
            files = {f.path: self._install(plan.listing, f, path) for f, path in downloaded}
            emit(Progress(status="writing manifest"))
            self.store.create(self.name, files=files)
        emit(Progress(status="success"))

    def _pull_layers(self, plan: RegistryPlan, emit: Emit) -> None:
        """Ollama's order: each layer (the config last), verify them all, then write the manifest."""
        wanted = [layer for layer in plan.manifest.layers if layer.mediaType in (MODEL, *TEXT_LAYERS, *KEPT_LAYERS)]
        with registry.client() as http:
            downloaded = [(layer, self._download_layer(http, plan, layer, emit)) for layer in wanted]
        config = plan.manifest.config
        FileProgress(emit, f"pulling {config.digest[7:19]}", config.digest, config.size, self._cancelled)(config.size)
        emit(Progress(status="verifying sha256 digest"))
        new: list[str] = []
        try:
            for layer, actual in downloaded:
                if actual is not None:
                    self._commit(layer, actual, new)
            found = read_layers(
                self.name, plan.manifest.layers, plan.model_format, lambda layer: self.store.blobs.require(layer.digest).read_text()
            )
            emit(Progress(status="writing manifest"))
            adopt(self.store, self.name, found, new_blobs=new)
        except BaseException:
            self.store.discard(new)
            raise

    def _download_layer(self, http: httpx.Client, plan: RegistryPlan, layer: Layer, emit: Emit) -> str | None:
        """Download one layer beside the blobs; its SHA-256, or None if the store already has it."""
        report = FileProgress(emit, f"pulling {layer.digest[7:19]}", layer.digest, layer.size, self._cancelled)
        partial = self.store.blobs.partial(layer.digest)
        with registry.downloading(partial):
            if self.store.blobs.has(layer.digest):
                report(layer.size)
                return None
            return registry.download(http, registry.blob_url(plan.base, plan.name, layer.digest), partial, layer.size, report)

    def _commit(self, layer: Layer, actual: str, new: list[str]) -> None:
        """Make a verified download a blob; a mismatch removes it (the next pull starts it again)."""
        try:
            new.append(self.store.blobs.commit_partial(self.store.blobs.partial(layer.digest), actual, layer.digest))
        except BadRequest:
            raise VllamaError(
                f"digest mismatch, file must be downloaded again: {layer.digest} from '{self.name.display}' "
                f"is not what the manifest names (its SHA-256 is sha256:{actual}); the download was discarded, pull again"
            ) from None

    def _download(self, listing: hub.Listing, file: hub.RemoteFile, emit: Emit) -> Path | None:
        """Fetch one file into the hub cache; None if the store already has its blob."""
        report = FileProgress(emit, f"pulling {file.label}", file.digest, file.size, self._cancelled)
        if file.sha256 and self.store.blobs.has(file.digest):
            report(file.size)
            return None
        report(0)
        path = hub.download(listing, file, report.bar())
        report(path.stat().st_size)
        return path

    def _install(self, listing: hub.Listing, file: hub.RemoteFile, path: Path | None) -> str:
        """Copy a downloaded file into the store's blobs, checking it against the hub's digest."""
        if path is None:
            return file.digest
        if file.sha256:
            with path.open("rb") as src:
                try:
                    return self.store.blobs.write_chunks(iter(lambda: src.read(hub.CHUNK), b""), expected=file.digest)
                except BadRequest:  # the digest does not match; nothing was stored
                    pass
        elif not file.blob_id or hub.git_blob_id(path) == file.blob_id:
            return self.store.blobs.import_file(path)
        hub.forget(path)
        raise VllamaError(
            f"'{file.path}' from '{listing.repo}' is corrupt: its content does not match the hub's digest "
            f"({file.digest or 'git blob ' + file.blob_id}); the download was discarded, pull again"
        )
