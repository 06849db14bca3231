"""Hardware probing: the one façade over the ``probe_hardware`` hook."""

from __future__ import annotations

import logging
from typing import cast

import pluggy

from vllama.types import Device, Hardware

log = logging.getLogger("vllama.hardware")


def probe(pm: pluggy.PluginManager) -> Hardware:
    """Call every probe in isolation; a probe that fails is logged and skipped."""
    devices: list[Device] = []
    for impl in pm.hook.probe_hardware.get_hookimpls():
        try:
            found = impl.function()
        except Exception:
            log.warning("hardware probe %s failed", impl.plugin_name, exc_info=True)
            continue
        devices.extend(cast("list[Device] | None", found) or ())
    return Hardware(devices=tuple(devices))
