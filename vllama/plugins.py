"""The plugin manager: built-in plugins, entry points (group ``vllama``) and modules by path."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Iterable

import msgspec
import pluggy

from vllama import hookspecs

log = logging.getLogger("vllama.plugins")

ENTRY_POINT_GROUP = "vllama"
#: Built-in behaviour, registered as ordinary plugins after the entry points.
BUILTIN_PLUGINS = ("vllama.probes", "vllama.resolvers", "vllama.selection")


class PluginInfo(msgspec.Struct, kw_only=True):
    """One registered plugin, as ``vllama plugins`` shows it."""

    name: str
    module: str
    hooks: list[str]
    distribution: str = ""
    version: str = ""
    builtin: bool = False


def make_plugin_manager(
    *,
    load_entrypoints: bool = True,
    allow: Iterable[str] | None = None,
    modules: Iterable[str] = (),
    builtins: bool = True,
) -> pluggy.PluginManager:
    """Build a plugin manager.

    ``allow`` limits entry points to those names (``VLLAMA_PLUGINS``); a plugin that fails
    to import is logged and skipped. ``modules`` are import paths registered as plugins
    (``VLLAMA_PLUGIN_MODULES``). Tests use ``load_entrypoints=False`` for hermetic runs.
    """
    pm = pluggy.PluginManager("vllama")
    pm.add_hookspecs(hookspecs)
    if load_entrypoints:
        _load_entrypoints(pm, None if allow is None else set(allow))
    for path in modules:
        if pm.get_plugin(path) is None:
            pm.register(importlib.import_module(path), name=path)
    if builtins:
        for path in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(path), name=path)
    return pm


def _load_entrypoints(pm: pluggy.PluginManager, allow: set[str] | None) -> None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allow is not None and ep.name not in allow:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=ep.name)
        except Exception:
            log.exception("plugin %r failed to load; skipping it", ep.name)


def describe(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every registered plugin with its hooks and distribution, for ``vllama plugins``."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        out.append(
            PluginInfo(
                name=name,
                module=getattr(plugin, "__name__", type(plugin).__name__),
                hooks=sorted(h.name for h in pm.get_hookcallers(plugin) or []),
                distribution=dist.metadata["name"] if dist else "",
                version=dist.version if dist else "",
                builtin=name in BUILTIN_PLUGINS,
            )
        )
    return sorted(out, key=lambda p: (p.builtin, p.name))
