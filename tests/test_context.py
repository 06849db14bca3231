"""The default context length by accelerator memory, and its steps down, as Ollama's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllama.context import BASE, GIB, default_num_ctx, smaller_num_ctx
from vllama.types import Device, Hardware

CPU = Device(kind="cpu", name="cpu", memory_bytes=512 * GIB)


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [((), 4096), ((16,), 4096), ((22.9,), 4096), ((24,), 32768), ((16, 16), 32768), ((46,), 32768), ((48,), 262144), ((80,), 262144)],
)
def test_the_default_follows_accelerator_memory(gpus: tuple[float, ...], expected: int) -> None:
    devices = (CPU, *(Device(kind="cuda", name="gpu", index=i, memory_bytes=int(g * GIB)) for i, g in enumerate(gpus)))
    assert default_num_ctx(Hardware(devices=devices)) == expected


def test_system_memory_alone_does_not_raise_it() -> None:
    assert default_num_ctx(Hardware(devices=(CPU,))) == BASE


@given(st.integers(min_value=1, max_value=1 << 24))
def test_stepping_down_ends_at_the_base_and_only_goes_down(num_ctx: int) -> None:
    steps = []
    while (smaller := smaller_num_ctx(num_ctx)) is not None:
        assert smaller < num_ctx
        steps.append(smaller)
        num_ctx = smaller
    assert num_ctx <= BASE or steps[-1] == BASE
    assert len(steps) <= 2
