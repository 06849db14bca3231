"""Driving ``huggingface_hub``: list a repo's files, download one into its cache, and say what
went wrong in words a user can act on.

``huggingface_hub`` is imported only when a pull runs. It brings its cache (``HF_HUB_CACHE``),
the token (``HF_TOKEN`` or ``hf auth login``), ``HF_ENDPOINT``, and resumes a dropped connection
with a Range request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from vllama.errors import NotFound, VllamaError

CHUNK = 1 << 20


class HubDenied(VllamaError):
    """The repo exists but this token may not read it (gated or private)."""

    status = 403


class RemoteFile(msgspec.Struct, frozen=True):
    """One file of a repo, with what the hub says about its contents."""

    path: str
    size: int = 0
    #: The LFS object's SHA-256 (weights); empty for small files kept in git.
    sha256: str = ""
    #: The git blob id (SHA-1 of ``blob <size>\\0<content>``).
    blob_id: str = ""

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha256}" if self.sha256 else ""

    @property
    def label(self) -> str:
        """What Ollama's progress shows: the digest's first 12 hex, else the file name."""
        return self.sha256[:12] if self.sha256 else self.path


class Listing(msgspec.Struct, frozen=True):
    """A repo's files at one commit."""

    repo: str
    commit: str
    files: tuple[RemoteFile, ...]


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def list_files(repo: str, revision: str | None) -> Listing:
    """The repo's files at ``revision`` (None: the default branch), with sizes and digests."""
    from huggingface_hub import HfApi

    with hub_errors(repo, revision):
        info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    files = tuple(RemoteFile(s.rfilename, s.size or 0, s.lfs.sha256 if s.lfs else "", s.blob_id or "") for s in info.siblings or ())
    return Listing(repo, info.sha or "", files)


def download(listing: Listing, file: RemoteFile, bar: type) -> Path:
    """Download one file into the hub cache (at once if it is there); ``bar`` is a tqdm-like class."""
    from huggingface_hub import hf_hub_download

    with hub_errors(listing.repo, listing.commit):
        return Path(hf_hub_download(listing.repo, file.path, revision=listing.commit, tqdm_class=bar))


def forget(path: Path) -> None:
    """Remove a downloaded file from the hub cache: its snapshot link and the blob behind it."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)


def git_blob_id(path: Path) -> str:
    """The git blob id of a file, as the hub lists it for files not in LFS."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def hub_errors(repo: str, revision: str | None) -> Iterator[None]:
    """Turn ``huggingface_hub``'s errors into vllama's, with what to do about them."""
    from huggingface_hub import errors

    token_hint = "set HF_TOKEN (or run `hf auth login`) to a token that can read it"
    try:
        yield
    except errors.GatedRepoError:
        raise HubDenied(f"'{repo}' is gated: accept its conditions on its page on the hub, then {token_hint}") from None
    except errors.RepositoryNotFoundError:
        raise NotFound(
            f"pull model manifest: repository '{repo}' not found on the Hugging Face Hub ({endpoint()}); "
            f"check the name, and if the repository is private, {token_hint}"
        ) from None
    except errors.RevisionNotFoundError:
        raise NotFound(f"pull model manifest: revision '{revision}' not found in '{repo}'") from None
    except errors.RemoteEntryNotFoundError as exc:
        raise NotFound(f"'{repo}' no longer has a file it listed: {_first_line(exc)}") from None
    except errors.OfflineModeIsEnabled:
        raise VllamaError("cannot pull from the Hugging Face Hub: HF_HUB_OFFLINE is set") from None
    except errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "an error"
        raise VllamaError(f"the Hugging Face Hub answered {status} for '{repo}': {_first_line(exc)}") from None
    except Exception as exc:
        if _is_connection_error(exc):
            reason = exc.__cause__ if isinstance(exc, errors.LocalEntryNotFoundError) and exc.__cause__ else exc
            raise VllamaError(f"cannot reach the Hugging Face Hub at {endpoint()}: {_first_line(reason)}") from None
        if isinstance(exc, OSError):  # a short read, a full disk
            raise VllamaError(f"downloading from '{repo}' failed: {_first_line(exc)}") from None
        raise


def _is_connection_error(exc: BaseException) -> bool:
    """Network failures, whichever HTTP client this ``huggingface_hub`` version uses."""
    from huggingface_hub import errors

    names = {cls.__name__ for cls in type(exc).__mro__}
    return isinstance(exc, (ConnectionError, TimeoutError, errors.LocalEntryNotFoundError)) or bool(
        names & {"TransportError", "RequestException"}
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
