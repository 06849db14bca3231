"""The commands that talk to a running server, in Ollama's output shapes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from vllama import __version__
from vllama.cli.main import cli

if TYPE_CHECKING:
    import httpx

    from vllama.cli.progress import FileBars


def base_url() -> str:
    """The server the client commands talk to: VLLAMA_HOST (else OLLAMA_HOST) read as Ollama's
    client reads it, its scheme kept: ``https://host`` is ``https://host:443``, ``host`` is
    ``http://host:11434``; a path (behind a proxy) is kept too."""
    from vllama.config import env, parse_host

    raw = (env("HOST") or "").strip()
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else "http"
    host, port = parse_host(raw)
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    path = urlsplit(raw if "://" in raw else f"http://{raw}").path.rstrip("/")
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}{path}"


def auth_headers() -> dict[str, str]:
    """``Authorization: Bearer`` with the first key of VLLAMA_API_KEY, else OLLAMA_API_KEY (as the
    ``ollama`` Python client sends it), or nothing when neither is set."""
    keys = [k.strip() for k in (os.environ.get("VLLAMA_API_KEY") or "").split(",") if k.strip()]
    key = keys[0] if keys else (os.environ.get("OLLAMA_API_KEY") or "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def http_client(url: str, timeout: httpx.Timeout | float) -> httpx.Client:
    """An HTTP client for the server at ``url``, with the API key. The CA certificates are loaded
    only for an https:// server: a plain http:// one needs none, and loading them takes about
    30 ms of every command's start."""
    import httpx

    return httpx.Client(base_url=url, timeout=timeout, headers=auth_headers(), verify=url.startswith("https://"))


def connect() -> httpx.Client:
    """A client for the server at VLLAMA_HOST / OLLAMA_HOST, after a heartbeat."""
    import httpx

    url = base_url()
    client = http_client(url, httpx.Timeout(None, connect=5))
    try:
        client.head("/")
    except httpx.TransportError:
        raise click.ClickException(f"could not connect to a vllama server at {url}; start one with `vllama serve`") from None
    return client


def error_of(response: httpx.Response) -> str:
    response.read()
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text or response.reason_phrase


def check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise click.ClickException(error_of(response))
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
    """Ollama's ``format.HumanBytes``: decimal units, whole numbers from 10 up."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{int(value)} {unit}" if value >= 10 or value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


def _duration_words(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s < 60:
        return "1 second" if s == 1 else f"{s} seconds"
    minutes = s // 60
    if minutes < 60:
        return "About a minute" if minutes == 1 else f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    for limit, per, unit in ((48, 1, "hours"), (24 * 14, 24, "days"), (24 * 60, 24 * 7, "weeks"), (24 * 730, 24 * 30, "months")):
        if hours < limit:
            return f"{hours // per} {unit}"
    return f"{s // 3600 // 24 // 365} years"


def seconds_since(stamp: str) -> float:
    """Seconds from an RFC 3339 time (UTC if it names no zone) to now; negative if it is ahead."""
    when = dt.datetime.fromisoformat(stamp)
    return (dt.datetime.now(dt.UTC) - (when if when.tzinfo else when.replace(tzinfo=dt.UTC))).total_seconds()


def human_time(stamp: str, zero: str = "Never") -> str:
    """Ollama's ``format.HumanTime``: "3 minutes ago", "4 minutes from now", "Forever"."""
    if not stamp or stamp.startswith("0001-"):
        return zero
    delta = seconds_since(stamp)
    if delta < -20 * 365 * 86400:
        return "Forever"
    return f"{_duration_words(-delta)} from now" if delta < 0 else f"{_duration_words(delta)} ago"


def table(rows: list[list[str]], *, indent: str = "", err: bool = False) -> None:
    """Columns padded to their widest cell and four spaces apart, as Ollama prints them."""
    columns = max(len(r) for r in rows)
    widths = [max((len(r[i]) for r in rows if i < len(r)), default=0) for i in range(columns)]
    for row in rows:
        click.echo((indent + "    ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))).rstrip(), err=err)


@cli.command("list")
@click.argument("prefix", required=False)
def list_models(prefix: str | None) -> None:
    """List installed models (those starting with PREFIX)."""
    models = check(connect().get("/api/tags")).json()["models"]
    rows = [["NAME", "ID", "SIZE", "MODIFIED"]]
    rows += [
        [m["name"], m["digest"][:12], human_size(m["size"]), human_time(m["modified_at"])]
        for m in models
        if not prefix or m["name"].lower().startswith(prefix.lower())
    ]
    table(rows)


cli.add_command(click.Command("ls", callback=list_models.callback, params=list_models.params, help=list_models.help, hidden=True))


def processor(size: int, size_vram: int) -> str:
    if size_vram == 0:
        return "100% CPU"
    if size_vram == size:
        return "100% GPU"
    if size_vram > size or size == 0:
        return "Unknown"
    cpu = int((size - size_vram) / size * 100 + 0.5)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


@cli.command()
@click.argument("prefix", required=False)
def ps(prefix: str | None) -> None:
    """List loaded models, with their backend, running and queued requests."""
    models = check(connect().get("/api/ps")).json()["models"]
    rows = [["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL", "BACKEND", "RUNNING", "QUEUED", "PARALLEL"]]
    for m in models:
        if prefix and not m["name"].startswith(prefix):
            continue
        if m.get("status") == "loading":
            until = "Loading..."
        elif m.get("status") == "failed":
            until = "Failed to load"
        elif seconds_since(m["expires_at"]) > 0:
            until = "Stopping..."
        else:
            until = human_time(m["expires_at"])
        rows.append(
            [
                m["name"],
                m["digest"][:12],
                human_size(m["size"]),
                processor(m["size"], m["size_vram"]),
                str(m["context_length"]),
                until,
                m.get("backend", ""),
                str(m.get("running", 0)),
                str(m.get("queued", 0)),
                str(m.get("parallel", 1)),
            ]
        )
    table(rows)


def _metadata_value(value: Any) -> str:
    """A model_info value as Ollama's ``show --verbose`` prints it; long lists are cut."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if not isinstance(value, list):
        return str(value)
    items = [_metadata_value(v) for v in value]
    shown, width = 0, 1
    for i, item in enumerate(items):
        w = len(item) + (2 if i else 0)
        if width + w > 10 and i > 0:
            break
        width, shown = width + w, shown + 1
    if shown < len(items):
        return "[" + " ".join(items[:shown]) + f" ...+{len(items) - shown} more]"
    return "[" + " ".join(items) + "]"


def _head(text: str, n: int) -> list[list[str]]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [["", line] for line in lines[:n]] + ([["", "..."]] if len(lines) > n else [])


def show_info(info: dict[str, Any], *, verbose: bool = False, err: bool = False) -> None:
    """Print a /api/show answer as ``ollama show`` does: Model, Capabilities, Parameters,
    (with ``verbose``) Metadata, System and License sections."""

    def section(title: str, rows: list[list[str]]) -> None:
        click.echo(f"  {title}", err=err)
        table(rows, err=err)
        click.echo("", err=err)

    details, model_info = info.get("details") or {}, info.get("model_info") or {}
    arch = model_info.get("general.architecture", "")
    rows = [["", "architecture", arch]] if arch else []
    if details.get("parameter_size"):
        rows.append(["", "parameters", details["parameter_size"]])
    for key, label in (("context_length", "context length"), ("embedding_length", "embedding length")):
        if f"{arch}.{key}" in model_info:
            rows.append(["", label, str(model_info[f"{arch}.{key}"])])
    rows.append(["", "quantization", details.get("quantization_level", "")])
    if info.get("requires"):
        rows.append(["", "requires", info["requires"]])
    section("Model", rows)
    if info.get("capabilities"):
        section("Capabilities", [["", c] for c in info["capabilities"]])
    if info.get("parameters"):
        section("Parameters", [["", *line.split()] for line in info["parameters"].splitlines() if line.strip()])
    if verbose and model_info:
        section("Metadata", [["", k, _metadata_value(model_info[k])] for k in sorted(model_info)])
    if info.get("system"):
        section("System", _head(info["system"], 2))
    if info.get("license"):
        section("License", _head(info["license"], 2))


@cli.command()
@click.argument("model")
@click.option("--license", "license_", is_flag=True, help="Show the model's license.")
@click.option("--modelfile", is_flag=True, help="Show the model's Modelfile.")
@click.option("--parameters", is_flag=True, help="Show the model's parameters.")
@click.option("--template", is_flag=True, help="Show the model's template.")
@click.option("--system", is_flag=True, help="Show the model's system message.")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed model information (all of model_info).")
def show(model: str, license_: bool, modelfile: bool, parameters: bool, template: bool, system: bool, verbose: bool) -> None:
    """Show information for a model."""
    parts = [
        key
        for flag, key in (
            (license_, "license"),
            (modelfile, "modelfile"),
            (parameters, "parameters"),
            (system, "system"),
            (template, "template"),
        )
        if flag
    ]
    if len(parts) > 1:
        raise click.UsageError("only one of '--license', '--modelfile', '--parameters', '--system', or '--template' can be specified")
    info = check(connect().post("/api/show", json={"model": model, "verbose": verbose})).json()
    if not parts:
        show_info(info, verbose=verbose)
    elif parts[0] in ("system", "template"):
        click.echo(info.get(parts[0], ""), nl=False)
    else:
        click.echo(info.get(parts[0], ""))


@cli.command()
@click.argument("models", nargs=-1, required=True)
def rm(models: tuple[str, ...]) -> None:
    """Remove models (unloading them first)."""
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
    response = connect().post("/api/generate", json={"model": model, "keep_alive": 0})
    if response.status_code == 404:
        raise click.ClickException(f'couldn\'t find model "{model}" to stop')
    check(response)


class Progress:
    """Ollama's progress on stderr: a line per status, a bar per file (``digest``, ``total``,
    ``completed``). A terminal sees rich bars with each file's speed and time left, redrawn in
    place; anything else (a pipe, ``TERM=dumb``) sees each bar once, done, as Ollama draws it."""

    def __init__(self) -> None:
        from vllama.cli.progress import animated

        self.tty = animated()
        self.status = ""
        self.done: set[str] = set()
        self.bars: FileBars | None = None

    def update(self, item: dict[str, Any]) -> None:
        status, digest = item.get("status") or "", item.get("digest") or ""
        total, completed = item.get("total") or 0, item.get("completed") or 0
        if total:
            if completed:  # the first report of a file, before it starts, is not drawn (as in Ollama)
                self.bar(digest or status, status or f"pulling {digest.removeprefix('sha256:')[:12]}", completed, total)
        elif status and status != self.status:
            self.line(status)

    def line(self, text: str) -> None:
        self.end()
        self.status = text
        click.echo(text, err=True)

    def bar(self, key: str, label: str, completed: int, total: int) -> None:
        if key in self.done:
            return
        if completed >= total:
            self.done.add(key)
        if self.tty:
            from vllama.cli.progress import FileBars

            self.bars = self.bars or FileBars()
            self.bars.update(key, label, completed, total)
        elif completed >= total:
            click.echo(self.render(label, total, total), err=True)

    def render(self, label: str, completed: int, total: int) -> str:
        """``pulling 3f2c1a2b3c4d:  42% ▕████      ▏  41 MB/ 98 MB``"""
        percent = completed / total * 100
        head = f"{label}: {percent:3.0f}%"
        tail = f"{human_size(completed):>6}/{human_size(total):>6}" if completed < total else f"{human_size(total):>6}"
        room = max(80 - len(head) - 13 - 5, 10)
        filled = int(room * percent / 100)
        return f"{head} ▕{'█' * filled}{' ' * (room - filled)}▏ {tail}"

    def end(self) -> None:
        if self.bars is not None:
            self.bars.stop()
            self.bars = None


def pull_model(client: httpx.Client, model: str, *, insecure: bool = False) -> None:
    """Pull ``model`` with Ollama's progress display; a failure raises ClickException."""
    progress = Progress()
    try:
        with client.stream("POST", "/api/pull", json={"model": model, "insecure": insecure}) as response:
            for item in stream_lines(response):
                progress.update(item)
    finally:
        progress.end()


@cli.command()
@click.argument("model")
@click.option("--insecure", is_flag=True, help="Pull from a registry over HTTP instead of HTTPS.")
def pull(model: str, insecure: bool) -> None:
    """Pull a model, showing each layer's progress.

    MODEL is a name from Ollama's registry (llama3.2, qwen2.5:7b, registry.ollama.ai/USER/MODEL,
    HOST/NAMESPACE/MODEL:TAG), a Hugging Face GGUF (hf.co/ORG/REPO:QUANT) or a safetensors or MLX
    repository (ORG/REPO). See docs/models.md for which source a short name comes from.
    """
    pull_model(connect(), model, insecure=insecure)


def upload(client: httpx.Client, path: Path, progress: Progress) -> str:
    """Send a file to /api/blobs unless the server has it; returns its digest."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    digest = f"sha256:{h.hexdigest()}"
    if client.head(f"/api/blobs/{digest}").status_code == 200:
        return digest
    size, label = path.stat().st_size, f"copying file {digest[7:19]}"

    def chunks() -> Iterator[bytes]:
        sent = 0
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk
                sent += len(chunk)
                progress.bar(digest, label, sent, size)

    check(client.post(f"/api/blobs/{digest}", content=chunks()))
    return digest


@cli.command()
@click.argument("model")
@click.option("-f", "--file", "modelfile_path", default="Modelfile", type=click.Path(dir_okay=False), help="Modelfile to read.")
@click.option("-q", "--quantize", help="Quantize to this level (e.g. q4_K_M).")
def create(model: str, modelfile_path: str, quantize: str | None) -> None:
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
    progress = Progress()
    progress.line("gathering model components")
    body: dict[str, Any] = {"model": model}
    source = (path.parent / Path(mf.from_).expanduser()) if not Path(mf.from_).expanduser().is_absolute() else Path(mf.from_)
    if mf.from_.startswith(("/", "./", "../", "~")) or source.exists():
        if source.is_dir():
            from vllama.store.files import model_files

            try:
                files = model_files(source)
            except Exception as e:  # a BadRequest: too many files
                raise click.ClickException(str(e)) from None
            body["files"] = {rel: upload(client, p, progress) for rel, p in files.items()}
        elif source.is_file():
            body["files"] = {source.name: upload(client, source, progress)}
        else:
            raise click.ClickException(f"no such file or directory: {mf.from_}")
    else:
        body["from"] = mf.from_
        if client.post("/api/show", json={"model": mf.from_}).status_code == 404:
            pull_model(client, mf.from_)  # FROM a library name or hub repo not installed yet
    for key, value in (
        ("parameters", mf.parameters),
        ("template", mf.template),
        ("system", mf.system),
        ("license", mf.license or None),
        ("messages", mf.messages or None),
        ("quantize", quantize),
    ):
        if value:
            body[key] = value
    with client.stream("POST", "/api/create", json=body) as response:
        for item in stream_lines(response):
            progress.update(item)
    progress.end()


@cli.command()
def version() -> None:
    """Show the server's and this client's versions."""
    import httpx

    url = base_url()
    try:
        with http_client(url, 10) as client:
            api_version = check(client.get("/api/version")).json()["version"]
            schema = client.get("/openapi/openapi.json")
    except (httpx.TransportError, click.ClickException, ValueError, KeyError):
        click.echo(f"Warning: could not connect to a running vllama server at {url}")
        click.echo(f"Warning: client version is {__version__}")
        return
    info = schema.json().get("info", {}) if schema.status_code == 200 else {}
    if info.get("title") == "vllama":
        server_version = info.get("version", "")
        click.echo(f"vllama version is {server_version} (Ollama API {api_version})")
    else:
        server_version = ""
        click.echo(f"ollama version is {api_version}")
    if server_version != __version__:
        click.echo(f"Warning: client version is {__version__}")
