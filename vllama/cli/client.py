"""The commands that talk to a running server, in Ollama's output shapes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx

from vllama.cli.main import cli


def base_url() -> str:
    from vllama.config import Settings

    return Settings.from_env().url


def connect() -> httpx.Client:
    """A client for the server at VLLAMA_HOST / OLLAMA_HOST, after a heartbeat."""
    url = base_url()
    client = httpx.Client(base_url=url, timeout=httpx.Timeout(None, connect=5))
    try:
        client.head("/")
    except httpx.TransportError:
        raise click.ClickException(f"could not connect to a vllama server at {url}; start one with `vllama serve`") from None
    return client


def check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        response.read()
        try:
            message = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            message = response.text or response.reason_phrase
        raise click.ClickException(message)
    return response


def stream_lines(response: httpx.Response) -> Iterator[dict[str, Any]]:
    check(response)
    for line in response.iter_lines():
        if line:
            item = json.loads(line)
            if "error" in item:
                raise click.ClickException(item["error"])
            yield item


def human_size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.0f} {unit}" if n / scale >= 10 else f"{n / scale:.1f} {unit}"
    return f"{n} B"


def human_ago(stamp: str) -> str:
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")[:26] + "+00:00" if stamp.endswith("Z") else stamp)
    seconds = (dt.datetime.now(dt.UTC) - when).total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "Less than a minute ago" if seconds >= 1 else "Less than a second ago"


def table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("    ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


@cli.command("list")
def list_models() -> None:
    """List installed models."""
    models = check(connect().get("/api/tags")).json()["models"]
    rows = [["NAME", "ID", "SIZE", "MODIFIED"]]
    rows += [[m["name"], m["digest"][:12], human_size(m["size"]), human_ago(m["modified_at"])] for m in models]
    table(rows)


@cli.command()
def ps() -> None:
    """List loaded models with their backend, load and queue."""
    models = check(connect().get("/api/ps")).json()["models"]
    rows = [["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "BACKEND", "RUNNING", "QUEUED", "PARALLEL", "UNTIL"]]
    for m in models:
        gpu = m["size_vram"] / m["size"] if m["size"] else 0
        processor = "100% GPU" if gpu >= 0.99 else "100% CPU" if gpu == 0 else f"{1 - gpu:.0%}/{gpu:.0%} CPU/GPU"
        until = "Forever" if m["expires_at"].startswith("2318") else m["expires_at"][:19].replace("T", " ")
        if m.get("status") == "loading":
            until = "loading"
        rows.append([m["name"], m["digest"][:12], human_size(m["size"]), processor, str(m["context_length"]),
                     m.get("backend", ""), str(m.get("running", 0)), str(m.get("queued", 0)), str(m.get("parallel", 1)), until])  # fmt: skip
    table(rows)


@cli.command()
@click.argument("model")
@click.option("--modelfile", is_flag=True, help="Print the model's Modelfile.")
@click.option("--parameters", is_flag=True, help="Print the model's parameters.")
@click.option("--template", is_flag=True, help="Print the model's template.")
@click.option("--system", is_flag=True, help="Print the model's system prompt.")
@click.option("--license", "license_", is_flag=True, help="Print the model's license.")
def show(model: str, modelfile: bool, parameters: bool, template: bool, system: bool, license_: bool) -> None:
    """Show a model's details."""
    info = check(connect().post("/api/show", json={"model": model})).json()
    for flag, key in ((modelfile, "modelfile"), (parameters, "parameters"), (template, "template"), (system, "system"), (license_, "license")):
        if flag:
            click.echo(info.get(key, ""))
            return
    d, mi = info["details"], info.get("model_info", {})
    arch = mi.get("general.architecture", d.get("family", ""))
    click.echo("  Model")
    for label, value in (("architecture", arch), ("parameters", d.get("parameter_size", "")),
                         ("context length", mi.get(f"{arch}.context_length", "")),
                         ("embedding length", mi.get(f"{arch}.embedding_length", "")),
                         ("quantization", d.get("quantization_level", ""))):  # fmt: skip
        if value != "":
            click.echo(f"    {label:<20}{value}")
    click.echo("\n  Capabilities")
    for cap in info.get("capabilities", []):
        click.echo(f"    {cap}")
    if info.get("parameters"):
        click.echo("\n  Parameters")
        for line in info["parameters"].splitlines():
            click.echo(f"    {line}")


@cli.command()
@click.argument("models", nargs=-1, required=True)
def rm(models: tuple[str, ...]) -> None:
    """Remove models."""
    client = connect()
    for model in models:
        check(client.request("DELETE", "/api/delete", json={"model": model}))
        click.echo(f"deleted '{model}'")


@cli.command()
@click.argument("source")
@click.argument("destination")
def cp(source: str, destination: str) -> None:
    """Copy a model to a new name."""
    check(connect().post("/api/copy", json={"source": source, "destination": destination}))
    click.echo(f"copied '{source}' to '{destination}'")


@cli.command()
@click.argument("model")
def stop(model: str) -> None:
    """Unload a model now."""
    check(connect().post("/api/generate", json={"model": model, "keep_alive": 0}))


def upload(client: httpx.Client, path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    digest = f"sha256:{h.hexdigest()}"
    if client.head(f"/api/blobs/{digest}").status_code != 200:
        with path.open("rb") as f:
            check(client.post(f"/api/blobs/{digest}", content=iter(lambda: f.read(1 << 20), b"")))
    return digest


@cli.command()
@click.argument("model")
@click.option("-f", "--file", "modelfile_path", default="Modelfile", type=click.Path(dir_okay=False), help="Modelfile to read.")
def create(model: str, modelfile_path: str) -> None:
    """Create a model from a Modelfile (FROM a local GGUF file, a model directory or a model)."""
    from vllama import modelfile

    path = Path(modelfile_path)
    try:
        mf = modelfile.parse(path.read_text(), engine_settings=None)
    except OSError as e:
        raise click.ClickException(f"cannot read {path}: {e.strerror}") from None
    except Exception as e:  # a BadRequest from the parser
        raise click.ClickException(str(e)) from None
    if mf.adapters:
        raise click.ClickException("ADAPTER is not supported yet")
    client = connect()
    body: dict[str, Any] = {"model": model}
    source = (path.parent / Path(mf.from_).expanduser()) if not Path(mf.from_).expanduser().is_absolute() else Path(mf.from_)
    if mf.from_.startswith(("/", "./", "../", "~")) or source.exists():
        if source.is_dir():
            files = [p for p in sorted(source.rglob("*")) if p.is_file() and not any(s.startswith(".") for s in p.relative_to(source).parts)]
            body["files"] = {p.relative_to(source).as_posix(): upload(client, p) for p in files}
        elif source.is_file():
            body["files"] = {source.name: upload(client, source)}
        else:
            raise click.ClickException(f"no such file or directory: {mf.from_}")
    else:
        body["from"] = mf.from_
    for key, value in (("parameters", mf.parameters), ("template", mf.template), ("system", mf.system),
                       ("license", mf.license or None), ("messages", mf.messages or None)):  # fmt: skip
        if value:
            body[key] = value
    with client.stream("POST", "/api/create", json=body) as response:
        for item in stream_lines(response):
            click.echo(item["status"])


@cli.command()
@click.argument("model")
def pull(model: str) -> None:
    """Pull a model."""
    with connect().stream("POST", "/api/pull", json={"model": model}) as response:
        for item in stream_lines(response):
            click.echo(item["status"])


@cli.command()
@click.argument("model")
@click.argument("prompt", required=False)
@click.option("--keepalive", help="How long the model stays loaded (e.g. 5m).")
@click.option("--format", "format_", help='Response format ("json").')
def run(model: str, prompt: str | None, keepalive: str | None, format_: str | None) -> None:
    """Chat with a model: one answer for PROMPT (or stdin), else interactively."""
    client = connect()
    base: dict[str, Any] = {"model": model}
    if keepalive:
        base["keep_alive"] = keepalive
    if format_:
        base["format"] = format_
    if prompt is None and not sys.stdin.isatty():
        prompt = sys.stdin.read()
    messages: list[dict[str, str]] = []
    if prompt is not None:
        _chat_turn(client, base, messages, prompt)
        return
    check(client.post("/api/chat", json={**base, "messages": []}))
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            break
        if line.strip() in ("/bye", "/exit"):
            break
        if line.strip() == "/clear":
            messages.clear()
            click.echo("Cleared session context")
            continue
        if line.strip():
            _chat_turn(client, base, messages, line)


def _chat_turn(client: httpx.Client, base: dict[str, Any], messages: list[dict[str, str]], text: str) -> None:
    messages.append({"role": "user", "content": text})
    reply = []
    with client.stream("POST", "/api/chat", json={**base, "messages": messages}) as response:
        for item in stream_lines(response):
            piece = item.get("message", {}).get("content", "")
            reply.append(piece)
            click.echo(piece, nl=False)
    click.echo("\n" if sys.stdout.isatty() else "")
    messages.append({"role": "assistant", "content": "".join(reply)})
