"""The default context length, as Ollama sizes it by the accelerator memory, and the smaller
sizes an automatic context steps down to when a load would not fit."""

from __future__ import annotations

from vllama.types import Hardware

GIB = 1 << 30
#: (accelerator memory at least, default num_ctx), largest first. Ollama's tiers, with its
#: slightly lower thresholds (47 and 23 GiB) for cards that report a little less than 48 or 24.
TIERS = ((47 * GIB, 262144), (23 * GIB, 32768))
#: The default without an accelerator, or with a small one.
BASE = 4096


def accelerator_bytes(hardware: Hardware) -> int:
    """Memory of the devices engines offload to: NVIDIA GPUs' (summed) and Apple silicon's
    unified memory; 0 on a machine with CPUs only."""
    return sum(d.memory_bytes for d in hardware.devices if d.kind != "cpu")


def default_num_ctx(hardware: Hardware) -> int:
    """``num_ctx`` when neither the request, the model nor the server sets it."""
    memory = accelerator_bytes(hardware)
    return next((ctx for least, ctx in TIERS if memory >= least), BASE)


def smaller_num_ctx(num_ctx: int) -> int | None:
    """The next automatic size below ``num_ctx`` to try when a load does not fit, or None."""
    return next((ctx for _, ctx in (*TIERS[1:], (0, BASE)) if num_ctx > ctx), None)
