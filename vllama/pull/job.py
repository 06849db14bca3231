"""One pull: planned before anything is streamed (so that errors get their real status), then run
in a thread of its own whose progress is read as an async stream.

Files are downloaded into the hub cache, then verified while they are copied into the store's
blobs, and the manifest is written last: a model that is not fully pulled is never listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from vllama.errors import BadRequest, VllamaError
from vllama.names import ModelName, parse_name
from vllama.pull import hub
from vllama.pull.plan import Plan, make_plan
from vllama.pull.progress import FileProgress, Progress
from vllama.store import ModelStore

if TYPE_CHECKING:
    from vllama.core import Vllama

Emit = Callable[[Progress], None]


class _Done(NamedTuple):
    """The end of a pull's progress, with its error if it failed."""

    error: Exception | None


async def prepare(v: Vllama, text: str) -> PullJob:
    """Plan a pull of ``text``: a model a plugin provides, or files to download from the hub."""
    name = parse_name(text)
    return await asyncio.to_thread(_prepare, v, name, text)


def _prepare(v: Vllama, name: ModelName, text: str) -> PullJob:
    if _provided(v, name):
        return PullJob(v.store, name, None)
    return PullJob(v.store, name, make_plan(name, text, v.hardware))


def _provided(v: Vllama, name: ModelName) -> bool:
    """Whether a plugin's resolver provides the model (the built-in store lookup aside); the
    llama.cpp plugin installs its offline starter ``smollm2:135m`` this way."""
    builtin = v.pm.get_plugin("vllama.resolvers")
    resolve = v.pm.subset_hook_caller("resolve_model", remove_plugins=[builtin] if builtin is not None else [])
    return resolve(name=name, store=v.store, hardware=v.hardware) is not None


class PullJob:
    """A planned pull. ``plan`` is None when a plugin already provided the model."""

    def __init__(self, store: ModelStore, name: ModelName, plan: Plan | None) -> None:
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
        if (plan := self.plan) is not None:
            downloaded = [(f, self._download(plan.listing, f, emit)) for f in plan.files]
            emit(Progress(status="verifying sha256 digest"))
            files = {f.path: self._install(plan.listing, f, path) for f, path in downloaded}
            emit(Progress(status="writing manifest"))
            self.store.create(self.name, files=files)
        emit(Progress(status="success"))

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
