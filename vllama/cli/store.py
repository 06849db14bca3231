"""``vllama import-ollama``: adopt an Ollama store's models into vllama's own store."""

from __future__ import annotations

import os
from pathlib import Path

import click

from vllama.cli.main import cli


@cli.command("import-ollama")
@click.argument("source", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    help="vllama's store to adopt them into (default: VLLAMA_MODELS, else ~/.vllama/models).",
)
def import_ollama(source: Path | None, into: Path | None) -> None:
    """Adopt the models of an Ollama store into vllama's own store.

    SOURCE is an Ollama models directory (default: OLLAMA_MODELS, else ~/.ollama/models). Each
    blob is verified, then hard-linked where both stores share a file system (no copy) or copied;
    the Ollama store is only read. A running server lists the models at once.

    To use an Ollama store without adopting it, point VLLAMA_MODELS (or OLLAMA_MODELS) at it:
    vllama then lists and runs its models in place and writes nothing there.
    """
    from vllama.config import Settings
    from vllama.errors import VllamaError
    from vllama.store import ModelStore
    from vllama.store.ollama import import_store

    source = (source or Path(os.environ.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models")).expanduser()
    into = (into or Path(os.environ.get("VLLAMA_MODELS") or Settings().models_dir)).expanduser()
    if not (source / "manifests").is_dir():
        raise click.ClickException(f"{source} is not an Ollama models directory (it has no manifests/)")
    try:
        store = ModelStore(into)
        results = import_store(source, store, lambda line: click.echo(line, err=True))
    except VllamaError as e:
        raise click.ClickException(e.message) from None
    if not results:
        click.echo(f"no models in {source}")
    for r in results:
        if r.skipped:
            click.echo(f"skipped {r.name}: {r.skipped}", err=True)
        else:
            click.echo(f"imported {r.name} ({r.linked} blobs linked, {r.copied} copied)")
