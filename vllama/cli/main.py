"""``vllama``: the root command. Importing it loads no engine, no web framework and no plugin.

The built-in commands' modules are imported when the group first needs a command; plugins
are loaded only for a name no built-in command has, so ``vllama --help`` and the client
commands start without pluggy, the hook specs or any plugin module.
"""

from __future__ import annotations

import importlib
import logging

import click

from vllama import __version__

#: The modules that define the built-in commands (each registers its commands on import).
COMMAND_MODULES = ("bench", "client", "inspect", "run", "serve", "store")


class CommandGroup(click.Group):
    """The root group: built-in commands on first use, plugin commands for any other name."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._builtins_loaded = False
        self._plugins_loaded = False

    def load_builtins(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            for name in COMMAND_MODULES:
                importlib.import_module(f"vllama.cli.{name}")

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self.load_builtins()
        if cmd_name not in self.commands and not self._plugins_loaded:
            self._plugins_loaded = True
            _register_plugin_commands(self)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_builtins()
        return super().list_commands(ctx)


@click.group(
    cls=CommandGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Plugins may add commands: `vllama plugins` lists those that implement register_commands.",
)
@click.version_option(__version__, "-v", "--version", prog_name="vllama")
def cli() -> None:
    """Ollama's server, API and CLI on the best engine for this machine.

    Environment: VLLAMA_HOST (or OLLAMA_HOST), VLLAMA_MODELS, VLLAMA_KEEP_ALIVE,
    VLLAMA_NUM_PARALLEL, VLLAMA_NUM_PARALLEL_MODELS, VLLAMA_MAX_LOADED_MODELS,
    VLLAMA_MAX_QUEUE, VLLAMA_ORIGINS, VLLAMA_CONTEXT_LENGTH, VLLAMA_BACKEND, VLLAMA_PLUGINS,
    VLLAMA_PLUGIN_MODULES, VLLAMA_ISOLATE_ENGINES, VLLAMA_PRELOAD, VLLAMA_DEBUG (or
    OLLAMA_DEBUG), VLLAMA_LOG_FORMAT, VLLAMA_ACCESS_LOG, VLLAMA_REGISTRY, VLLAMA_SHORT_NAMES.
    """


def main() -> None:
    cli(prog_name="vllama")


def _register_plugin_commands(group: click.Group) -> None:
    """Let plugins add commands, without failing the CLI if one is broken."""
    try:
        from vllama.config import Settings
        from vllama.plugins import make_plugin_manager

        settings = Settings.from_env()
        make_plugin_manager(allow=settings.plugins, modules=settings.plugin_modules).hook.register_commands(cli=group)
    except Exception:
        logging.getLogger("vllama").warning("plugin commands unavailable", exc_info=True)
