"""``vllama``: the root command. Importing it loads no engine and no web framework."""

from __future__ import annotations

import logging
import sys

import click

from vllama import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    from vllama.cli import bench, client, inspect, run, serve, store  # noqa: F401 - they register commands

    _register_plugin_commands()
    cli(prog_name="vllama")


def _register_plugin_commands() -> None:
    """Let plugins add commands, without failing the CLI if one is broken."""
    if len(sys.argv) > 1 and sys.argv[1] in cli.commands:
        return
    try:
        from vllama.config import Settings
        from vllama.plugins import make_plugin_manager

        settings = Settings.from_env()
        make_plugin_manager(allow=settings.plugins, modules=settings.plugin_modules).hook.register_commands(cli=cli)
    except Exception:
        logging.getLogger("vllama").warning("plugin commands unavailable", exc_info=True)
