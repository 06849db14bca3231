"""``vllama run``: one answer for a prompt, or an interactive chat, as ``ollama run`` does."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from vllama.cli.client import check, connect, error_of, pull_model, show_info, stream_lines
from vllama.cli.main import cli

if TYPE_CHECKING:
    import httpx

THINK_VALUES = ("true", "false", "high", "medium", "low", "max")
GREY, BOLD, RESET = "\x1b[38;5;245m", "\x1b[1m", "\x1b[0m"

USAGE = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
"""
USAGE_SET = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think             Enable thinking
  /set nothink           Disable thinking
"""
USAGE_SHOW = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template
"""
USAGE_PARAMETERS = """Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter num_gpu <int>          The number of layers to send to the GPU
  /set parameter stop <string> <string> ...   Set the stop parameters
"""
USAGE_SHORTCUTS = """Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor

  Ctrl + l            Clear the screen
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit vllama (/bye)
"""


class RunCommand(click.Command):
    """``--think`` alone means ``--think=true``: Ollama's flag takes an optional value."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        args = ["--think=true" if a == "--think" else a for a in args[:end]] + args[end:]
        return super().parse_args(ctx, args)


def go_duration(ns: int) -> str:
    """A duration in nanoseconds as Go prints one: ``1.234567s``, ``12.5ms``, ``1m2.5s``."""
    if ns == 0:
        return "0s"

    def fraction(n: int, unit: int) -> str:
        whole, rest = divmod(n, unit)
        digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    for unit, name in ((1, "ns"), (1_000, "µs"), (1_000_000, "ms")):
        if ns < unit * 1000:
            return fraction(ns, unit) + name
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = fraction(rest, 1_000_000_000) + "s"
    return f"{hours}h{minutes}m{seconds}" if hours else f"{minutes}m{seconds}" if minutes else seconds


def print_timings(done: dict[str, Any]) -> None:
    """Ollama's ``--verbose`` block, on stderr."""
    lines = []
    if (total := done.get("total_duration", 0)) > 0:
        lines.append(f"total duration:       {go_duration(total)}")
    if (load := done.get("load_duration", 0)) > 0:
        lines.append(f"load duration:        {go_duration(load)}")
    for label, count_key, duration_key in (
        ("prompt eval", "prompt_eval_count", "prompt_eval_duration"),
        ("eval", "eval_count", "eval_duration"),
    ):
        count, duration = done.get(count_key, 0), done.get(duration_key, 0)
        if count > 0:
            lines.append(f"{label + ' count:':<22}{count} token(s)")
        if duration > 0:
            lines.append(f"{label + ' duration:':<22}{go_duration(duration)}")
            lines.append(f"{label + ' rate:':<22}{count / (duration / 1e9):.2f} tokens/s")
    for line in lines:
        click.echo(line, err=True)


def parameter_value(name: str, values: list[str]) -> Any:
    """A ``/set parameter`` value, typed as a Modelfile PARAMETER is; ValueError if it is not."""
    from vllama.options import value_type

    kind = value_type(name)
    if kind is list:
        return values
    raw = values[0]
    if kind is None:  # an engine setting: the server checks it
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    if kind is bool:
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{name} must be true or false")
        return raw.lower() in ("true", "1")
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}") from None


def go_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    return str(value)


class Display:
    """Streams one reply: thinking dimmed (or hidden) above the answer, and, when ``wrap``,
    words kept whole at the terminal's edge (a word is shown once it ends)."""

    def __init__(self, *, hide_thinking: bool, color: bool, wrap: bool) -> None:
        self.hide_thinking, self.color = hide_thinking, color
        self.limit = _columns() - 5
        self.wrap = wrap and self.limit >= 15
        self.thinking = False
        self.thought = ""
        self.column = 0
        self.word = ""

    def write(self, thinking: str, content: str) -> None:
        if thinking and not self.hide_thinking:
            if not self.thinking:
                click.echo(self._style("Thinking...\n", GREY + BOLD, after=GREY), nl=False)
                self.thinking = True
            self.thought += thinking
            self._emit(thinking)
        if self.thinking and content:
            self._close_thinking()
        self._emit(content)

    def finish(self) -> None:
        click.echo(self._flush_word(), nl=False)
        if self.thinking and self.color:
            click.echo(RESET, nl=False)

    def _close_thinking(self) -> None:
        click.echo(self._flush_word(), nl=False)
        if not self.thought.endswith("\n"):
            click.echo("")
        click.echo(self._style("...done thinking.\n\n", GREY + BOLD), nl=False)
        self.thinking, self.column = False, 0

    def _style(self, text: str, style: str, after: str = "") -> str:
        return f"{style}{text}{RESET}{after}" if self.color else text

    def _emit(self, text: str) -> None:
        if not self.wrap:
            click.echo(text, nl=False)
            return
        out = []
        for ch in text:
            if ch not in " \t\n":
                self.word += ch
                if len(self.word) >= self.limit:  # longer than a line: cut it
                    out.append(self._flush_word())
                continue
            out.append(self._flush_word())
            if ch == "\n" or self.column + 1 > self.limit:
                out.append("\n")
                self.column = 0
            else:
                out.append(ch)
                self.column += 1
        click.echo("".join(out), nl=False)

    def _flush_word(self) -> str:
        word, self.word = self.word, ""
        if self.column and self.column + len(word) > self.limit:
            self.column = len(word)
            return "\n" + word
        self.column += len(word)
        return word


def _columns() -> int:
    """The terminal's width; 80 where it does not say."""
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns or 80
    except OSError:
        return 80


class Bye(Exception):
    """Leave the interactive session."""


@dataclass
class Session:
    """One ``vllama run``: the model, what to send with each request, and the conversation."""

    client: httpx.Client
    model: str
    keep_alive: str | None
    format: str | None
    think: bool | str | None
    #: Whether --think or /set think chose ``think``; otherwise it follows the model.
    think_set: bool
    hide_thinking: bool
    verbose: bool
    wrap: bool
    system: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: Lines of a triple-quoted message still being typed, and what it is for ("prompt" or "system").
    pending: list[str] = field(default_factory=list)
    multiline: str = ""
    #: Whether the model lists the "thinking" capability (set from its /api/show answer).
    can_think: bool = False

    def body(self, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, **fields}
        for key, value in (("keep_alive", self.keep_alive), ("format", self.format), ("think", self.think)):
            if value is not None:
                body[key] = value
        if self.options:
            body["options"] = self.options
        return body

    def display(self) -> Display:
        terminal = sys.stdout.isatty()
        color = terminal and not os.environ.get("NO_COLOR")
        return Display(hide_thinking=self.hide_thinking, color=color, wrap=self.wrap and terminal)

    def infer_think(self, info: dict[str, Any]) -> None:
        """Ollama's default: think when the model can, unless the user chose (a model that
        cannot is sent no ``think`` at all)."""
        self.can_think = "thinking" in info.get("capabilities", [])
        if not self.think_set:
            self.think = True if self.can_think else None

    def warn_if_no_thinking(self) -> None:
        """As Ollama's CLI: a think setting for a model that cannot think is sent, with a warning."""
        if not self.can_think:
            click.echo(f'warning: model "{self.model}" does not support thinking output', err=True)

    # -- one answer -----------------------------------------------------------------------

    def generate(self, prompt: str) -> None:
        display = self.display()
        done: dict[str, Any] = {}
        try:
            with self.client.stream("POST", "/api/generate", json=self.body(prompt=prompt)) as response:
                for item in stream_lines(response):
                    display.write(item.get("thinking", ""), item.get("response", ""))
                    if item.get("done"):
                        done = item
        finally:
            display.finish()
        if prompt:
            click.echo("\n")
        if self.verbose and done:
            print_timings(done)

    def embed(self, text: str) -> None:
        if not text:
            raise click.ClickException(f'embedding models require input text. Usage: vllama run {self.model} "your text here"')
        body = {"model": self.model, "input": text, **({"keep_alive": self.keep_alive} if self.keep_alive else {})}
        embeddings = check(self.client.post("/api/embed", json=body)).json()["embeddings"]
        click.echo(json.dumps(embeddings[0], separators=(",", ":")))

    # -- the interactive session ------------------------------------------------------------

    def load(self) -> None:
        """Load the model (an empty prompt), so the first message does not wait for it; a
        terminal sees a spinner with the time elapsed meanwhile."""
        from vllama.cli.progress import waiting

        body = {"model": self.model, **({"keep_alive": self.keep_alive} if self.keep_alive else {})}
        with waiting(f"Loading {self.model}"):
            check(self.client.post("/api/generate", json=body))

    def chat(self) -> None:
        """Send the conversation, stream the reply and keep it; Ctrl-C stops the reply."""
        display, stopped = self.display(), False
        done: dict[str, Any] = {}
        reply: list[str] = []
        thought: list[str] = []
        try:
            with self.client.stream("POST", "/api/chat", json=self.body(messages=self.messages)) as response:
                for item in stream_lines(response):
                    message = item.get("message") or {}
                    display.write(message.get("thinking", ""), message.get("content", ""))
                    reply.append(message.get("content", ""))
                    thought.append(message.get("thinking", ""))
                    if item.get("done"):
                        done = item
        except KeyboardInterrupt:
            stopped = True
        finally:
            display.finish()
        if stopped:
            click.echo("")
            return
        click.echo("\n")
        if self.verbose and done:
            print_timings(done)
        self.messages.append({"role": "assistant", "content": "".join(reply), **({"thinking": "".join(thought)} if any(thought) else {})})

    def interact(self) -> None:
        from vllama.cli.history import history

        with history():
            self.read_lines()

    def read_lines(self) -> None:
        while True:
            try:
                line = input("... " if self.multiline else ">>> ")
            except EOFError:
                click.echo("")
                return
            except KeyboardInterrupt:
                click.echo("\nUse Ctrl + d or /bye to exit.")
                self.pending, self.multiline = [], ""
                continue
            try:
                text = self.take(line)
                if text:
                    self.turn(text)
            except Bye:
                return

    def take(self, line: str) -> str:
        """Handle one typed line; return a message to send, if it completes one."""
        if self.multiline:
            ended = line.endswith('"""')
            self.pending.append(line.removesuffix('"""') if ended else line + "\n")
            if not ended:
                return ""
            text, kind = "".join(self.pending), self.multiline
            self.pending, self.multiline = [], ""
            if kind == "system":
                self.set_system(text)
                return ""
            return text
        if line.startswith('"""'):
            rest = line[3:]
            if len(rest) >= 3 and rest.endswith('"""'):
                return rest[:-3]
            self.pending, self.multiline = [rest + "\n"], "prompt"
            return ""
        if line.startswith("/"):
            self.command(line)
            return ""
        return line

    def turn(self, text: str) -> None:
        import httpx

        self.messages.append({"role": "user", "content": text})
        try:
            self.chat()
        except click.ClickException as e:
            self.messages.pop()
            click.echo(f"Error: {e.message}", err=True)
        except httpx.TransportError as e:
            self.messages.pop()
            click.echo(f"Error: lost the connection to the server ({e})", err=True)

    def set_system(self, text: str) -> None:
        self.system = text
        message = {"role": "system", "content": text}
        if self.messages and self.messages[-1]["role"] == "system":
            self.messages[-1] = message
        else:
            self.messages.append(message)
        click.echo("Set system message.")

    def command(self, line: str) -> None:
        args = line.split()
        name = args[0]
        if name in ("/bye", "/exit"):
            raise Bye
        if name == "/clear":
            self.messages = [{"role": "system", "content": self.system}] if self.system else []
            click.echo("Cleared session context")
        elif name == "/set":
            self.command_set(args)
        elif name == "/show":
            self.command_show(args)
        elif name == "/load":
            self.command_load(args)
        elif name == "/save":
            self.command_save(args)
        elif name in ("/?", "/help"):
            topic = args[1].lstrip("/") if len(args) > 1 else ""
            usage = {"set": USAGE_SET, "show": USAGE_SHOW, "shortcut": USAGE_SHORTCUTS, "shortcuts": USAGE_SHORTCUTS}
            click.echo(usage.get(topic, USAGE), err=True)
        else:
            click.echo(f"Unknown command '{name}'. Type /? for help")

    def command_set(self, args: list[str]) -> None:
        if len(args) < 2:
            click.echo(USAGE_SET, err=True)
            return
        what = args[1]
        if what == "parameter":
            if len(args) < 4:
                click.echo(USAGE_PARAMETERS, err=True)
                return
            try:
                self.options[args[2]] = parameter_value(args[2], args[3:])
            except ValueError as e:
                click.echo(f"Couldn't set parameter: {e}")
                return
            click.echo(f"Set parameter '{args[2]}' to '{', '.join(args[3:])}'")
        elif what == "system":
            if len(args) < 3:
                click.echo(USAGE_SET, err=True)
                return
            text = " ".join(args[2:])
            if text.startswith('"""'):
                text = text[3:]
                if not (text.endswith('"""') and len(text) >= 3):
                    self.pending, self.multiline = [text + "\n"], "system"
                    return
                text = text[:-3]
            self.set_system(text)
        elif what in ("verbose", "quiet"):
            self.verbose = what == "verbose"
            click.echo(f"Set '{what}' mode.")
        elif what in ("wordwrap", "nowordwrap"):
            self.wrap = what == "wordwrap"
            click.echo(f"Set '{what}' mode.")
        elif what == "think":
            self.think, self.think_set = (args[2] if len(args) > 2 else True), True
            self.warn_if_no_thinking()
            click.echo(f"Set 'think' mode to '{args[2]}'." if len(args) > 2 else "Set 'think' mode.")
        elif what == "nothink":
            self.think, self.think_set = False, True
            self.warn_if_no_thinking()
            click.echo("Set 'nothink' mode.")
        elif what == "format":
            if len(args) < 3 or args[2] != "json":
                click.echo("Invalid or missing format. For 'json' mode use '/set format json'")
            else:
                self.format = "json"
                click.echo("Set format to 'json' mode.")
        elif what == "noformat":
            self.format = None
            click.echo("Disabled format.")
        else:
            click.echo(f"Unknown command '/set {what}'. Type /? for help")

    def command_show(self, args: list[str]) -> None:
        if len(args) < 2:
            click.echo(USAGE_SHOW, err=True)
            return
        info = check(self.client.post("/api/show", json={"model": self.model})).json()
        what = args[1]
        if what == "info":
            show_info(info, err=True)
        elif what == "license":
            click.echo(info.get("license") or "No license was specified for this model.")
        elif what == "modelfile":
            click.echo(info.get("modelfile", ""))
        elif what == "parameters":
            click.echo("Model defined parameters:")
            lines = (info.get("parameters") or "").splitlines() or ["No additional parameters were specified for this model."]
            click.echo("".join(f"  {line}\n" for line in lines))
            if self.options:
                click.echo("User defined parameters:")
                click.echo("".join(f"  {k:<30} {go_value(v)}\n" for k, v in self.options.items()))
        elif what == "system":
            system = self.system or info.get("system")
            click.echo(f"{system}\n" if system else "No system message was specified for this model.")
        elif what == "template":
            click.echo(info.get("template") or "No prompt template was specified for this model.")
        else:
            click.echo(f"Unknown command '/show {what}'. Type /? for help")

    def command_load(self, args: list[str]) -> None:
        if len(args) != 2:
            click.echo("Usage:\n  /load <modelname>")
            return
        click.echo(f"Loading model '{args[1]}'")
        response = self.client.post("/api/show", json={"model": args[1]})
        if response.status_code == 404:
            click.echo(f"Couldn't find model '{args[1]}'")
            return
        previous = (self.model, self.think, self.messages)
        self.model, self.messages = args[1], []
        self.infer_think(check(response).json())
        try:
            self.load()
        except click.ClickException as e:
            self.model, self.think, self.messages = previous
            click.echo(f"error: {e.message}")

    def command_save(self, args: list[str]) -> None:
        if len(args) != 2:
            click.echo("Usage:\n  /save <modelname>")
            return
        body: dict[str, Any] = {"model": args[1], "from": self.model, "stream": False}
        for key, value in (("system", self.system), ("parameters", self.options), ("messages", self.messages)):
            if value:
                body[key] = value
        response = self.client.post("/api/create", json=body)
        if response.status_code >= 400:
            click.echo(f"error: {error_of(response)}")
            return
        click.echo(f"Created new model '{args[1]}'")


def show_or_pull(client: httpx.Client, model: str, *, insecure: bool) -> dict[str, Any]:
    """The model's /api/show answer, pulling the model first if the server lacks it."""
    response = client.post("/api/show", json={"model": model})
    if response.status_code == 404:
        pull_model(client, model, insecure=insecure)
        response = client.post("/api/show", json={"model": model})
    return check(response).json()


@cli.command(cls=RunCommand)
@click.argument("model")
@click.argument("prompt", nargs=-1)
@click.option("--keepalive", metavar="DURATION", help="How long the model stays loaded after a request (e.g. 5m).")
@click.option("--verbose", is_flag=True, help="Show timings for each response.")
@click.option("--format", "format_", metavar="FORMAT", help="Response format (e.g. json).")
@click.option(
    "--think",
    type=click.Choice(THINK_VALUES),
    metavar="[=VALUE]",
    help="Thinking: --think, --think=false, or a level (high, medium, low, max) for models that think.",
)
@click.option("--hidethinking", is_flag=True, help="Hide thinking output (if provided).")
@click.option("--nowordwrap", is_flag=True, help="Don't wrap words to the next line automatically.")
@click.option("--insecure", is_flag=True, help="Use an insecure registry when pulling.")
def run(
    model: str,
    prompt: tuple[str, ...],
    keepalive: str | None,
    verbose: bool,
    format_: str | None,
    think: str | None,
    hidethinking: bool,
    nowordwrap: bool,
    insecure: bool,
) -> None:
    """Run a model: print one answer to PROMPT (and stdin), or chat interactively.

    The model is pulled first if the server does not have it. In the chat, /? lists the
    commands, \"\"\" begins a multi-line message, Ctrl-C stops a reply and Ctrl-D or /bye leaves.
    """
    from vllama.cli.progress import animated

    client = connect()
    parts = list(prompt)
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not parts
    if not sys.stdin.isatty():
        if text := sys.stdin.read():
            parts.insert(0, text)
    think_value = {"true": True, "false": False}.get(think, think) if think else None
    session = Session(
        client=client,
        model=model,
        keep_alive=keepalive,
        format=format_,
        think=think_value,
        think_set=think is not None,
        hide_thinking=hidethinking,
        verbose=verbose,
        wrap=not nowordwrap,
    )
    info = show_or_pull(client, model, insecure=insecure)
    session.infer_think(info)
    if think is not None:
        session.warn_if_no_thinking()
    capabilities = info.get("capabilities", [])
    if "embedding" in capabilities and "completion" not in capabilities:
        session.embed(" ".join(parts))
    elif not interactive:
        if animated():
            session.load()  # a spinner while the model loads, before the answer streams
        session.generate(" ".join(parts))
    else:
        session.load()
        for message in info.get("messages") or []:
            if message["role"] == "user":
                click.echo(f">>> {message['content']}")
            elif message["role"] == "assistant":
                click.echo(f"{message['content']}\n")
        session.interact()
