"""What the CLI draws while it waits, seen on a pseudo-terminal: the spinner while a model loads,
pull bars with speed and time left, NO_COLOR and TERM=dumb; the chat's history; https hosts;
shell completion."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vllama.cli.client import Progress, base_url
from vllama.cli.progress import elapsed_words
from vllama.names import parse_name
from vllama.store import ModelStore
from vllama.testing.server import ServerProcess, free_port

sys.path.insert(0, str(Path(__file__).parent))
from registry_standin import Fault, RegistryStandin, build_model
from test_cli import ECHO_ENV, Terminal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")

GREEN = "\x1b[32m"


def session(server: ServerProcess, *args: str, **env: str) -> Terminal:
    """``vllama ARGS`` on a terminal, read to its end."""
    term = Terminal(server, *args, env=env)
    try:
        term.read_until(None)
    finally:
        term.close()
    return term


def test_run_shows_a_spinner_with_the_time_while_the_model_loads(echo_server: ServerProcess) -> None:
    term = session(echo_server, "run", "echo", "--hidethinking", "hello")
    assert re.search(r"Loading echo \(\d+s\)", term.screen), term.screen
    assert term.screen.rstrip().endswith("hello")
    assert GREEN in term.raw  # the spinner's colour


def test_no_color_keeps_the_spinner_without_colour(echo_server: ServerProcess) -> None:
    term = session(echo_server, "run", "echo", "--hidethinking", "hello", NO_COLOR="1")
    assert re.search(r"Loading echo \(\d+s\)", term.screen) and GREEN not in term.raw


def test_no_color_leaves_the_thinking_undimmed(echo_server: ServerProcess) -> None:
    dim = "\x1b[38;5;245m"
    assert dim in session(echo_server, "run", "echo", "hello").raw
    plain = session(echo_server, "run", "echo", "hello", NO_COLOR="1")
    assert dim not in plain.raw and "Thinking...\nThe user said 1 words." in plain.screen


def test_a_dumb_terminal_gets_no_spinner(echo_server: ServerProcess) -> None:
    term = session(echo_server, "run", "echo", "--hidethinking", "hello", TERM="dumb")
    assert "Loading" not in term.screen and "hello" in term.screen


def test_the_chat_keeps_its_history_across_sessions(echo_server: ServerProcess, tmp_path: Path) -> None:
    first = Terminal(echo_server, "run", "echo", "--hidethinking", env={"HOME": str(tmp_path)})
    try:
        first.read_until(">>> ")
        first.type("a line to remember")
        first.type("/bye", until=None)  # type: ignore[arg-type]
    finally:
        first.close()
    assert (tmp_path / ".vllama" / "history").read_text().splitlines()[-2:] == ["a line to remember", "/bye"]
    second = Terminal(echo_server, "run", "echo", "--hidethinking", env={"HOME": str(tmp_path)})
    try:
        second.read_until(">>> ")
        second.type("\x1b[A\x1b[A")  # up twice: past /bye to the line before, sent again
        assert "a line to remember\na line to remember" in second.screen
    finally:
        second.close()


def test_serve_shows_a_spinner_below_its_logs_until_the_preloaded_model_loads(tmp_path: Path, tiny_gguf: Path) -> None:
    store = ModelStore(tmp_path / "models")
    store.create(parse_name("echo"), files=store.import_path(tiny_gguf))
    env = {**ECHO_ENV, "VLLAMA_MODELS": str(tmp_path / "models"), "VLLAMA_HOST": f"127.0.0.1:{free_port()}"}
    term = Terminal(None, "serve", "--model", "echo", "--model", "no-such-model", env=env)
    try:
        before = term.read_until("could not preload no-such-model")
    finally:
        term.close()
    assert re.search(r"Loading echo \(then 1 more\) \(\d+s\)", before), before
    assert before.index("listening on") < before.index("Loading echo") < before.index("preloaded echo")
    assert term.raw.rfind("\x1b[?25h") > term.raw.rfind("Loading")  # cleared, and the cursor shown again
    assert "preloaded echo:latest on echo" in before


def test_bench_shows_a_bar_per_server_and_level_then_clears_it(echo_server: ServerProcess) -> None:
    term = session(echo_server, "bench", "echo", "-c", "1,2", "-n", "4", "--num-predict", "2", "--name", "echoes")
    assert re.search(r"echoes level 1 .* 4/4 requests", term.screen) and re.search(r"echoes level 2 .* 4/4 requests", term.screen)
    table = term.screen[term.screen.index("echoes (ollama, echo)") :]
    assert "level" not in table  # the bars are gone before the table prints


@pytest.fixture(scope="module")
def registry(tiny_gguf: Path) -> Iterator[RegistryStandin]:
    reg = RegistryStandin()
    reg.models["library/tiny:latest"] = build_model(tiny_gguf.read_bytes())
    with reg:
        yield reg


def test_pull_draws_a_bar_per_layer_with_its_size_speed_and_time_left(registry: RegistryStandin, tmp_path: Path) -> None:
    model = registry.models["library/tiny:latest"]
    weights = model.digest_of("model")
    registry.faults[weights] = Fault(delay=0.01)
    env = {**ECHO_ENV, "VLLAMA_REGISTRY": registry.url, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    with ServerProcess(tmp_path / "models", env) as server:
        term = session(server, "pull", "tiny")
    lines = [line.rstrip() for line in term.screen.replace("\r", "\n").splitlines() if line.strip()]
    assert lines[0] == "pulling manifest" and lines[-1] == "success"
    bar = next(line for line in lines if line.startswith(f"pulling {weights[7:19]}") and "100%" in line)
    size = len(registry.blob(weights) or b"")
    assert re.search(rf"100% +{size}/{size} bytes +\S+ +0:00:00$", bar), bar  # size, speed (? when too quick to tell), time left


def test_progress_off_a_terminal_stays_ollamas(capsys: pytest.CaptureFixture[str]) -> None:
    """A pipe sees each finished bar once (no rich), so logs stay readable."""
    progress = Progress()
    progress.update({"status": "pulling abc", "digest": "sha256:abc", "total": 10, "completed": 10})
    assert progress.bars is None
    assert capsys.readouterr().err.startswith("pulling abc: 100%")


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("", "http://127.0.0.1:11434"),
        ("example.com", "http://example.com:11434"),
        ("http://example.com", "http://example.com:80"),
        ("https://example.com", "https://example.com:443"),
        ("https://example.com:8443/ollama/", "https://example.com:8443/ollama"),
        ("0.0.0.0:1234", "http://127.0.0.1:1234"),
        ("[::1]:5000", "http://[::1]:5000"),
    ],
)
def test_the_host_keeps_its_scheme_as_ollamas_client_does(host: str, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLAMA_HOST", raising=False)
    monkeypatch.setenv("OLLAMA_HOST", host)
    assert base_url() == url


def test_elapsed_time_reads_as_seconds_then_minutes() -> None:
    assert [elapsed_words(s) for s in (0.4, 12.9, 65, 600)] == ["0s", "12s", "1m05s", "10m00s"]


def test_shell_completion_completes_commands_and_options() -> None:
    """The completion that docs/usage/serve.md tells shells to load."""

    def complete(*words: str) -> list[str]:
        env = {**os.environ, "COMP_WORDS": " ".join(["vllama", *words]), "COMP_CWORD": str(len(words)), "_VLLAMA_COMPLETE": "bash_complete"}
        out = subprocess.run([sys.executable, "-m", "vllama"], env=env, capture_output=True, text=True, check=True)
        return [line.split(",", 1)[1] for line in out.stdout.splitlines()]

    assert complete("li") == ["list"]
    assert complete("bench", "--ra") == ["--rate"]


TLS = Path(__file__).parent / "tls"


class _Tags(BaseHTTPRequestHandler):
    """A server that knows one model, over TLS."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        body = json.dumps({"models": [{"name": "tls:latest", "digest": "sha256:" + "ab" * 32, "size": 1, "modified_at": ""}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def tls_server() -> Iterator[str]:
    """A server on https://127.0.0.1 with a self-signed certificate (tests/tls, valid until 2126)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Tags)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "127.0.0.1.crt", TLS / "127.0.0.1.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_https_host_is_reached_over_tls_and_its_certificate_checked(tls_server: str) -> None:
    def vllama_list(**env: str) -> subprocess.CompletedProcess[str]:
        environ = {k: v for k, v in os.environ.items() if k != "VLLAMA_HOST"} | {"OLLAMA_HOST": tls_server, **env}
        return subprocess.run([sys.executable, "-m", "vllama", "list"], env=environ, capture_output=True, text=True, timeout=60)

    trusted = vllama_list(SSL_CERT_FILE=str(TLS / "127.0.0.1.crt"))
    assert trusted.returncode == 0 and "tls:latest" in trusted.stdout, trusted.stderr
    untrusted = vllama_list()  # the self-signed certificate is not among the trusted ones
    assert untrusted.returncode == 1 and f"could not connect to a vllama server at {tls_server}" in untrusted.stderr
