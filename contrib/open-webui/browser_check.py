"""Open WebUI against vllama in a real browser: the model picker lists vllama's model, a chat
streams an answer into the page, and a screenshot shows it.

    /path/to/open-webui-venv/bin/python contrib/open-webui/browser_check.py \\
        --openwebui-python /path/to/open-webui-venv/bin/python \\
        --screenshot docs/images/open-webui-chat.png

What it does, each step printed as ``ok`` (with the seconds since the start) or ``FAIL``:

1. starts ``vllama serve`` on a free loopback port with a temporary model store, and pulls the
   model (``smollm2:135m``, the starter model, installs offline), or creates it from a GGUF file
   (``--model qwen2.5-coder:0.5b --from-gguf FILE``);
2. starts Open WebUI on another free port, its ``OLLAMA_BASE_URL`` set to that vllama, without
   login (``WEBUI_AUTH=False``), offline (``OFFLINE_MODE=True``: no model hub downloads), its
   OpenAI connection off and its data in a temporary ``DATA_DIR``; with ``--api-key``, vllama
   requires that key and Open WebUI's connection has it (``OLLAMA_API_CONFIGS``). Open WebUI
   offers its built-in tools with every chat; for a model that cannot call tools (its
   ``/api/show`` capabilities lack ``tools``, as the starter model's do) they are turned off
   (``DEFAULT_MODEL_METADATA``), since vllama, as Ollama, answers ``tools`` for such a model with
   a 400. ``--builtin-tools time`` leaves only those categories of built-in tools on;
3. opens Open WebUI in headless Chromium (Playwright), sets the user's temperature to 0 (what
   Settings > General > Advanced Parameters stores, with Max Tokens from ``--max-tokens``), checks
   that the model picker lists the model and picks it;
4. types ``--prompt`` ("What is the capital of France?") in the message box and presses Enter,
   checks that the page's request asks for a stream with that model, waits for the assistant
   message to finish and checks it: no error in the message as Open WebUI stored it, and its text
   on the page not empty and containing ``--expect`` ("Paris" by default);
   with ``--expect-tool NAME``, it checks instead that the model called that built-in tool
   through vllama's tool calls, that Open WebUI ran it and stored its result, and that the page
   shows the call with that result once opened. Open WebUI then sends the result back with the
   tools still offered; a model that calls a tool again on its result (Qwen2.5-Coder-0.5B does)
   would loop, so the check lets Open WebUI run one round of tools
   (``CHAT_RESPONSE_MAX_TOOL_CALL_ITERATIONS=1``) and reports how the reply ended;
5. saves a screenshot (PNG, 1280x800) to ``--screenshot``, waits for the chat's title (Open WebUI
   asks the model for it), and stops the browser, Open WebUI and vllama, also when a step fails or
   on Ctrl-C or SIGTERM. On a failure it keeps the servers' logs and a screenshot of the page
   beside ``--screenshot`` (``*-failed.png``), and exits 1.

vllama's own settings come from the environment, e.g. ``VLLAMA_CONTEXT_LENGTH=16384`` for a model
that calls tools with all of Open WebUI's built-in tools on: they make a prompt longer than the
default 4096 tokens. The tool check (docs/clients.md)::

    .../python contrib/open-webui/browser_check.py --openwebui-python .../python \\
        --model qwen2.5-coder:0.5b --from-gguf qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \\
        --builtin-tools time --expect-tool get_current_timestamp --max-tokens 128 \\
        --prompt "What is the current Unix timestamp? Use the get_current_timestamp tool." \\
        --screenshot docs/images/open-webui-tool.png

Needs (none of them are vllama's dependencies; the check is run by hand):

- a Python with Playwright, to run this script: ``pip install playwright``; Playwright's own
  browser download is not used, so ``playwright install`` is not needed;
- Chromium: ``--chromium``, ``$CHROMIUM``, else ``chromium`` or ``chromium-browser`` on PATH
  (Debian: ``apt-get install chromium``);
- Open WebUI's Python: ``--openwebui-python`` or ``$OPENWEBUI_PYTHON``, else the Python running
  this script (``pip install open-webui``, Python 3.11);
- vllama: ``--vllama``, else ``.venv/bin/vllama`` of this checkout, else ``vllama`` on PATH.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[2]
PROMPT = "What is the capital of France?"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


BUILTIN_TOOL_CATEGORIES = (
    "automations",
    "calendar",
    "channels",
    "chats",
    "code_interpreter",
    "files",
    "image_generation",
    "knowledge",
    "memory",
    "notes",
    "notifications",
    "skills",
    "subagents",
    "tasks",
    "time",
    "user_input",
    "web_search",
)


class CheckFailed(Exception):
    """A step did not give what it should; the message says what it got."""


def log(message: str) -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


HEADERS: dict[str, str] = {}  # vllama's API key, with --api-key


def get_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers=HEADERS), timeout=timeout) as response:
        return json.loads(response.read())


def post_json(url: str, body: object, timeout: float = 30) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **HEADERS})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class Server:
    """A server subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, cmd: list[str], *, env: dict[str, str], log_path: Path, cwd: Path) -> None:
        self.name, self.cmd, self.env, self.log_path, self.cwd = name, cmd, env, log_path, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def wait_ready(self, url: str, timeout: float) -> Any:
        """Polls ``url`` until it answers 200 with JSON, which it returns."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise CheckFailed(f"{self.name} exited with {code}:\n{self.tail()}")
            with contextlib.suppress(OSError, ValueError):
                return get_json(url)
            time.sleep(0.5)
        raise CheckFailed(f"{self.name} did not answer {url} in {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # the server stops what it started (vllama its engine workers)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the group started for it
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def find_vllama(given: str | None) -> str:
    local = REPO / ".venv" / "bin" / "vllama"
    for candidate in (given, str(local) if local.exists() else None, shutil.which("vllama")):
        if candidate:
            return candidate
    raise CheckFailed("vllama not found: give --vllama")


def find_chromium(given: str | None) -> str:
    for candidate in (given, os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate:
            return candidate
    raise CheckFailed("Chromium not found: give --chromium (Debian: apt-get install chromium)")


def openwebui_env(
    data_dir: Path, ollama_url: str, *, builtin_tools: bool, only_tools: list[str] | None, tool_rounds: int | None, api_key: str | None
) -> dict[str, str]:
    """Open WebUI's settings for the check: vllama as its one Ollama server, no login, offline.

    Open WebUI offers its built-in tools (time, knowledge bases, chat search...) with every chat
    from its pages, as native tool calls. Ollama, and vllama as it, refuses ``tools`` for a model
    that cannot call them (400 ``does not support tools``), so for such a model they are turned off
    for every model, as Admin Panel > Settings > Models does.
    """
    env = {
        **os.environ,
        "OLLAMA_BASE_URL": ollama_url,
        "ENABLE_OPENAI_API": "False",
        "WEBUI_AUTH": "False",
        "WEBUI_SECRET_KEY": secrets.token_hex(16),
        "DATA_DIR": str(data_dir),
        # No downloads from model hubs: no local embedding model is loaded at start (documents
        # would be embedded through the Ollama server), and Hugging Face stays offline.
        "OFFLINE_MODE": "True",
        "HF_HUB_OFFLINE": "1",
        "RAG_EMBEDDING_ENGINE": "ollama",
        "RAG_EMBEDDING_MODEL_AUTO_UPDATE": "False",
        "RAG_RERANKING_MODEL_AUTO_UPDATE": "False",
        "WHISPER_MODEL_AUTO_UPDATE": "False",
        "ENABLE_VERSION_UPDATE_CHECK": "False",
        "ANONYMIZED_TELEMETRY": "False",
        "DO_NOT_TRACK": "True",
        "SCARF_NO_ANALYTICS": "True",
    }
    if api_key:  # the key of Open WebUI's first Ollama connection (Admin Panel > Settings > Connections)
        env["OLLAMA_API_CONFIGS"] = json.dumps({"0": {"key": api_key}})
    if tool_rounds is not None:
        env["CHAT_RESPONSE_MAX_TOOL_CALL_ITERATIONS"] = str(tool_rounds)
    if not builtin_tools:
        env["DEFAULT_MODEL_METADATA"] = json.dumps({"capabilities": {"builtin_tools": False}})
    elif only_tools is not None:
        env["DEFAULT_MODEL_METADATA"] = json.dumps({"builtinTools": {c: c in only_tools for c in BUILTIN_TOOL_CATEGORIES}})
    return env


STARTED = time.monotonic()


def step(title: str, detail: object) -> None:
    text = detail if isinstance(detail, str) else json.dumps(detail)
    log(f"ok    {time.monotonic() - STARTED:5.1f}s  {title}: {text[:300]}")


def browse(args: argparse.Namespace, owui_url: str, vllama_url: str, chromium: str, failed_shot: Path) -> None:
    """The browser part: model picker, chat, screenshot."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise CheckFailed(f"Playwright is not installed in {sys.executable}: pip install playwright") from exc

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800}, color_scheme="light")
            page.set_default_timeout(args.timeout * 1000)
            try:
                chat_in_page(page, args, owui_url, vllama_url)
            except BaseException:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(failed_shot))
                    log(f"the page at the failure: {failed_shot}")
                raise
        finally:
            browser.close()


def chat_in_page(page: Page, args: argparse.Namespace, owui_url: str, vllama_url: str) -> None:
    page.goto(owui_url)
    page.wait_for_selector("#chat-input")  # signed in as the admin Open WebUI makes without login
    version = page.evaluate("() => fetch('/api/version').then(r => r.json())")["version"]
    step("Open WebUI loaded, signed in without login", f"Open WebUI {version} at {page.url}")

    # The user's temperature (Settings > General > Advanced Parameters), and the release notes
    # marked as seen so that their dialog does not cover the page.
    params: dict[str, int] = {"temperature": 0}
    if args.max_tokens:
        params["max_tokens"] = args.max_tokens  # Open WebUI sends it to Ollama's API as num_predict
    saved = page.evaluate(
        """async ([version, params]) => {
            const r = await fetch('/api/v1/users/user/settings/update', {
                method: 'POST',
                headers: {'Content-Type': 'application/json', Authorization: `Bearer ${localStorage.token}`},
                body: JSON.stringify({ui: {version, params}}),
            });
            return {status: r.status, body: await r.json()};
        }""",
        [version, params],
    )
    if saved["status"] != 200:
        raise CheckFailed(f"saving the user's settings: {saved}")
    page.reload()
    page.wait_for_selector("#chat-input")
    step("the user's settings (temperature 0)", saved["body"]["ui"]["params"])

    picker = page.locator("#model-selector-model-button")
    picker.click()
    options = page.locator("#model-selector-list [role=option]")
    options.first.wait_for()
    labels = [options.nth(i).inner_text().strip() for i in range(options.count())]
    if not any(args.model in label for label in labels):
        raise CheckFailed(f"{args.model} not in the model picker: {labels}")
    step("the model picker lists vllama's model", labels)
    options.filter(has_text=args.model).first.click()
    selected = picker.get_attribute("aria-label") or ""
    if args.model not in selected:
        raise CheckFailed(f"picking {args.model}: the picker says {selected!r}")
    step("picked it", selected)

    page.locator("#chat-input").click()
    page.keyboard.type(args.prompt)
    with page.expect_request(lambda r: r.url.endswith("/api/chat/completions") and r.method == "POST") as sent:
        page.keyboard.press("Enter")
    body = sent.value.post_data_json or {}
    if body.get("model") != args.model or not body.get("stream"):
        raise CheckFailed(f"the page's request is not a streamed chat with {args.model}: {json.dumps(body)[:300]}")
    step("sent from the message box, streamed", {"model": body["model"], "stream": body["stream"], "params": body.get("params")})

    answer = page.locator(".chat-assistant").last
    answer.wait_for()
    content = answer.locator("#response-content-container")
    seen: list[str] = []  # the answer's text as the page showed it, while it streamed
    deadline = time.monotonic() + args.timeout
    while page.locator(".regenerate-response-button").count() == 0:  # shown once the message is done
        if time.monotonic() > deadline:
            raise CheckFailed(f"the answer did not finish in {args.timeout:.0f} s; it showed {seen}")
        with contextlib.suppress(Exception):  # the message is re-rendered as it grows
            text = content.inner_text(timeout=1000).strip() if content.count() else ""
            if text and (not seen or seen[-1] != text):
                seen.append(text)
        time.sleep(0.05)
    text = content.inner_text().strip()
    stored = stored_answer(page)
    if args.expect_tool:
        tool_used_in_page(page, stored, args.expect_tool)
        if stored.get("error"):  # the model called the tool again on its result: see --expect-tool
            step("after the result (Open WebUI's tool-call limit, --expect-tool)", stored["error"])
            stored = {}
    if stored.get("error"):
        raise CheckFailed(f"Open WebUI shows an error in the assistant message: {stored['error']}")
    if not text:
        raise CheckFailed(f"the assistant message is empty: {answer.inner_html()[:300]}")
    if args.expect and args.expect.lower() not in text.lower():
        raise CheckFailed(f"the answer does not say {args.expect!r}: {text!r}")
    step("the assistant's answer", f"{text!r} ({len(seen)} states of the message seen while it streamed)")

    stop = page.locator("button[aria-label='Stop']")  # shown while the chat or its follow-up requests run
    with contextlib.suppress(Exception):
        stop.first.wait_for(state="hidden", timeout=min(args.timeout, 30) * 1000)
    page.wait_for_timeout(args.settle * 1000)
    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(args.screenshot))
    step("screenshot", str(args.screenshot))

    # After the answer Open WebUI asks the model for the chat's title, tags and follow-up
    # questions (plain /api/chat requests). Wait for the title, which becomes the page's.
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and page.title() == "Open WebUI":
        time.sleep(0.5)
    running = sum(m.get("running", 0) + m.get("queued", 0) for m in get_json(f"{vllama_url}/api/ps")["models"])
    title = page.title() if page.title() != "Open WebUI" else f"none in {args.timeout:.0f} s"
    step("the chat's title, asked of the model by Open WebUI", f"{title!r}; requests still in vllama: {running}")


def tool_used_in_page(page: Page, stored: dict[str, Any], tool: str) -> None:
    """Checks that the model called ``tool`` through vllama, that Open WebUI ran it, and that the
    page shows the call with its result."""
    items = stored.get("output") or []
    calls = {i.get("call_id"): i for i in items if i.get("type") == "function_call" and i.get("name") == tool}
    results = [i for i in items if i.get("type") == "function_call_output" and i.get("call_id") in calls]
    if not results:
        kinds = [(i.get("type"), i.get("name")) for i in items]
        raise CheckFailed(f"no call of {tool} with its result in the message as Open WebUI stored it: {kinds}")
    first = results[0]
    output = "".join(part.get("text", "") for part in first.get("output") or [] if isinstance(part, dict))
    step(f"the model called {tool}, Open WebUI ran it", {"arguments": calls[first["call_id"]].get("arguments"), "result": output})
    # One call shows as "View Result from TOOL", several as a group ("Explored 2 TOOL, OTHER")
    # that opens onto one such line each; a line opens onto the call's arguments and result.
    message = page.locator(".chat-assistant").last
    view = message.get_by_text(f"View Result from {tool}").first
    if not view.is_visible():
        message.get_by_text(tool).filter(visible=True).first.click()
    view.wait_for()
    shown = message.get_by_text(result_sample(output)).first
    if not shown.is_visible():
        view.click()
    shown.wait_for()
    step("the page shows the call and its result", f"{view.inner_text().strip()!r}, showing {shown.inner_text().strip()[:120]!r}")


def result_sample(output: str) -> str:
    """A piece of a tool's result to look for on the page: its first value, for a JSON object."""
    with contextlib.suppress(ValueError, AttributeError, StopIteration):
        return str(next(iter(json.loads(output).values())))
    return output[:20]


def stored_answer(page: Page) -> dict[str, Any]:
    """The chat's last message as Open WebUI stored it (its ``content``, and its ``error`` if any)."""
    chat_id = page.url.rsplit("/c/", 1)[-1] if "/c/" in page.url else ""
    if not chat_id:
        raise CheckFailed(f"the page did not open the chat it made: {page.url}")
    chat = page.evaluate(
        """async (id) => {
            const r = await fetch(`/api/v1/chats/${id}`, {headers: {Authorization: `Bearer ${localStorage.token}`}});
            return r.json();
        }""",
        chat_id,
    )
    history = chat["chat"]["history"]
    message: dict[str, Any] = history["messages"][history["currentId"]]
    return message


def run(args: argparse.Namespace, workdir: Path) -> None:
    vllama = find_vllama(args.vllama)
    chromium = find_chromium(args.chromium)
    vllama_port, owui_port = free_port(), free_port()
    vllama_url, owui_url = f"http://127.0.0.1:{vllama_port}", f"http://127.0.0.1:{owui_port}"
    vllama_env = {**os.environ, "VLLAMA_HOST": f"127.0.0.1:{vllama_port}", "VLLAMA_MODELS": str(workdir / "models")}
    vllama_env.pop("OLLAMA_HOST", None)
    for name in ("VLLAMA_API_KEY", "VLLAMA_API_KEY_READONLY", "OLLAMA_API_KEY"):
        vllama_env.pop(name, None)
    if args.api_key:
        vllama_env["VLLAMA_API_KEY"] = args.api_key  # the server requires it; the CLI sends it
        HEADERS["Authorization"] = f"Bearer {args.api_key}"

    serve = Server("vllama", [vllama, "serve"], env=vllama_env, log_path=workdir / "vllama.log", cwd=workdir)
    with running(serve):
        version = serve.wait_ready(f"{vllama_url}/api/version", timeout=120)["version"]
        step("vllama serve", f"{vllama_url} (Ollama API version {version})")
        if args.from_gguf:
            modelfile = workdir / "Modelfile"
            modelfile.write_text(f"FROM {args.from_gguf.resolve()}\n")
            made = [vllama, "create", args.model, "-f", str(modelfile)]
        else:
            made = [vllama, "pull", args.model]
        done = subprocess.run(made, env=vllama_env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise CheckFailed(f"{' '.join(made)} exited with {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        names = [m["name"] for m in get_json(f"{vllama_url}/api/tags")["models"]]
        if args.model not in names:
            raise CheckFailed(f"{args.model} not in vllama's /api/tags: {names}")
        step(f"vllama {made[1]}", names)
        capabilities = post_json(f"{vllama_url}/api/show", {"model": args.model})["capabilities"]
        builtin_tools = "tools" in capabilities
        step(
            "its capabilities",
            f"{capabilities}: Open WebUI's built-in tools "
            + (
                "turned off, since the model cannot call tools (DEFAULT_MODEL_METADATA)"
                if not builtin_tools
                else f"only {args.builtin_tools} on"
                if args.builtin_tools
                else "left on (its default)"
            ),
        )

        owui_cmd = [
            args.openwebui_python,
            "-c",
            "import sys; from open_webui import app; sys.argv[0] = 'open-webui'; app()",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(owui_port),
        ]
        owui = Server(
            "open-webui",
            owui_cmd,
            env=openwebui_env(
                workdir / "open-webui-data",
                vllama_url,
                builtin_tools=builtin_tools,
                only_tools=args.builtin_tools,
                tool_rounds=1 if args.expect_tool else None,
                api_key=args.api_key,
            ),
            log_path=workdir / "open-webui.log",
            cwd=workdir,
        )
        with running(owui):
            health = owui.wait_ready(f"{owui_url}/health", timeout=args.start_timeout)
            step("Open WebUI serve", f"{owui_url} {health}")
            try:
                browse(args, owui_url, vllama_url, chromium, args.screenshot.with_name(f"{args.screenshot.stem}-failed.png"))
            except BaseException:
                log(f"--- the end of Open WebUI's log ({owui.log_path}):\n{owui.tail()}")
                raise
        loaded = [m["name"] for m in get_json(f"{vllama_url}/api/ps")["models"]]
        step("vllama ran the chat (GET /api/ps)", loaded)


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends the check as Ctrl-C does, so that every server is stopped."""
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--openwebui-python",
        default=os.environ.get("OPENWEBUI_PYTHON") or sys.executable,
        help="Python with open-webui installed (default $OPENWEBUI_PYTHON, else this one)",
    )
    parser.add_argument("--vllama", help="the vllama command (default .venv/bin/vllama of this checkout, else vllama on PATH)")
    parser.add_argument("--chromium", help="Chromium's executable (default $CHROMIUM, else chromium on PATH)")
    parser.add_argument("--model", default="smollm2:135m", help="the model to chat with; pulled unless --from-gguf")
    parser.add_argument("--from-gguf", type=Path, help="create --model from this GGUF file (vllama create) instead of pulling it")
    parser.add_argument("--api-key", help="run vllama with this VLLAMA_API_KEY, and give it to Open WebUI's Ollama connection")
    parser.add_argument(
        "--builtin-tools", type=lambda v: v.split(","), help="only these categories of Open WebUI's built-in tools, e.g. 'time'"
    )
    parser.add_argument("--expect-tool", help="a built-in tool the model must call, e.g. get_current_timestamp")
    parser.add_argument("--max-tokens", type=int, help="the user's Max Tokens (num_predict) setting")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument(
        "--expect", help="text the answer must contain ('' for any non-empty answer; default 'Paris', or '' with --expect-tool)"
    )
    parser.add_argument("--screenshot", type=Path, default=Path("open-webui-chat.png"))
    parser.add_argument("--timeout", type=float, default=300, help="seconds for each step in the page")
    parser.add_argument("--start-timeout", type=float, default=300, help="seconds for Open WebUI to start")
    parser.add_argument("--settle", type=float, default=1, help="seconds to wait after the answer, before the screenshot")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, model store, Open WebUI's data)")
    args = parser.parse_args()
    if args.expect is None:
        args.expect = "" if args.expect_tool else "Paris"

    signal.signal(signal.SIGTERM, interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="vllama-open-webui-"))
    ok = False
    try:
        run(args, workdir)
        ok = True
        step("all stopped", "Open WebUI and vllama")
    except CheckFailed as exc:
        log(f"FAIL  {exc}")
    except KeyboardInterrupt:
        log("FAIL  interrupted")
    except Exception as exc:  # a step that raised something else (Playwright's timeouts, HTTP errors)
        log(f"FAIL  {type(exc).__name__}: {exc}")
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"logs and data: {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
