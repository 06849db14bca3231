"""The hooks through which plugins extend vllama. Hooks discover; engines do the work.

Plugins implement any of these with ``@vllama.hookimpl`` in the module named by their
entry point (group ``vllama``), and may accept only the arguments they need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:
    import click
    from litestar.types import ControllerRouterHandler

    from vllama.engine import Backend
    from vllama.names import ModelName
    from vllama.selection import Candidate
    from vllama.store.store import ModelStore
    from vllama.types import Device, Hardware, ModelRef

hookspec = HookspecMarker("vllama")
hookimpl = HookimplMarker("vllama")

# -- discovery: called once, at start -------------------------------------------------


@hookspec
def probe_hardware() -> Sequence[Device] | None:
    """Report the devices this plugin can see.

    Every implementation is called, each in isolation: one that raises is logged and
    counts as None. Must be cheap: no engine imports (try-import a vendor SDK at most).

    :returns: The devices found, or None when this plugin's hardware is absent.
    """


@hookspec
def register_backends(register: Callable[[type[Backend]], None]) -> None:
    """Register :class:`~vllama.engine.Backend` classes by calling ``register(cls)``.

    Every implementation is called. Two backends with one ``name`` stop the start-up
    with a PluginError. Registering must not import the inference library.
    """


# -- per request: resolution and choice ----------------------------------------------


@hookspec(firstresult=True)
def resolve_model(name: ModelName, store: ModelStore, hardware: Hardware) -> ModelRef | None:
    """Turn a parsed model name into an installed model.

    Stops at the first non-None result. Return None for names this plugin does not own.
    The built-in resolver (the local model store) runs last. A plugin may install a model
    into ``store`` before answering (the llama.cpp plugin does for its starter model).
    """


@hookspec(firstresult=True)
def select_backend(model: ModelRef, hardware: Hardware, candidates: Sequence[Candidate]) -> Candidate | None:
    """Choose the backend for a model among those whose ``supports()`` accepted it.

    Stops at the first non-None result. The built-in policy runs last: the backend named by
    the model's ``backend`` parameter or VLLAMA_BACKEND if any, else the highest score.
    """


# -- surfaces -----------------------------------------------------------------------------


@hookspec
def register_routes(register: Callable[[ControllerRouterHandler], None]) -> None:
    """Add Litestar route handlers, routers or controllers to the server.

    Every implementation is called once, when the app is built.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``vllama`` command line (``@cli.command()``).

    Every implementation is called once, when the CLI starts.
    """
