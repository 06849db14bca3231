"""Hardware probes: the CPU, nvidia-smi parsing, and isolation of a failing probe."""

from __future__ import annotations

import logging

import pytest

from vllama import probes
from vllama.hardware import probe
from vllama.hookspecs import hookimpl
from vllama.plugins import make_plugin_manager
from vllama.probes import cpu_device, parse_nvidia_smi, probe_cpu
from vllama.types import Device, Hardware

NVIDIA_SMI = """\
0, NVIDIA H100 80GB HBM3, 81559, 9.0, 550.54.15
1, NVIDIA A100-SXM4-40GB, 40960, 8.0, 550.54.15
"""


def test_cpu_probe() -> None:
    devices = probe_cpu()
    assert len(devices) == 1
    cpu = devices[0]
    assert isinstance(cpu, Device)
    assert cpu.kind == "cpu"
    assert cpu.cores >= 1
    assert cpu.memory_bytes > 0
    assert cpu.name
    assert set(cpu.features) <= set(probes._CPU_FLAGS)


def test_cpu_device_is_stable() -> None:
    assert cpu_device() == cpu_device()


def test_parse_nvidia_smi() -> None:
    devices = parse_nvidia_smi(NVIDIA_SMI)
    assert devices == [
        Device(kind="cuda", index=0, name="NVIDIA H100 80GB HBM3", memory_bytes=81559 * 1024 * 1024, features=("9.0",), driver="550.54.15"),
        Device(kind="cuda", index=1, name="NVIDIA A100-SXM4-40GB", memory_bytes=40960 * 1024 * 1024, features=("8.0",), driver="550.54.15"),
    ]
    hw = Hardware(devices=tuple(devices))
    assert hw.has_nvidia and not hw.has_metal and hw.cpu is None
    assert [d.index for d in hw.of_kind("cuda")] == [0, 1]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "No devices were found\n",
        "NVIDIA-SMI has failed because it couldn't communicate with the driver.",
        "index, name, memory.total [MiB], compute_cap, driver_version\n",
        "x, GPU, 1, 8.0, 1\n",
        "0, GPU, 1, 8.0\n",
    ],
)
def test_parse_nvidia_smi_ignores_garbage(text: str) -> None:
    assert parse_nvidia_smi(text) == []


def test_parse_nvidia_smi_unknown_memory() -> None:
    (dev,) = parse_nvidia_smi("0, Some GPU, [N/A], 7.5, 535.0\n")
    assert dev.memory_bytes == 0 and dev.features == ("7.5",)


def test_parse_nvidia_smi_windows_line_endings_and_spaces() -> None:
    devices = parse_nvidia_smi("  0 ,  GPU A , 1024 , 8.6 , 1.0 \r\n1,GPU B,2048,8.9,1.0\r\n")
    assert [(d.index, d.name, d.memory_bytes, d.features) for d in devices] == [
        (0, "GPU A", 1024 * 2**20, ("8.6",)),
        (1, "GPU B", 2048 * 2**20, ("8.9",)),
    ]


def test_hardware_accessors() -> None:
    cpu = Device(kind="cpu", name="c", cores=4, memory_bytes=1)
    metal = Device(kind="metal", name="m")
    hw = Hardware(devices=(cpu, metal))
    assert hw.cpu == cpu and hw.has_metal and not hw.has_nvidia
    assert Hardware().cpu is None


def test_probe_with_builtins_finds_the_cpu() -> None:
    hw = probe(make_plugin_manager(load_entrypoints=False))
    assert len(hw.of_kind("cpu")) == 1
    assert hw.cpu is not None and hw.cpu.cores >= 1


class BrokenProbe:
    @hookimpl
    def probe_hardware(self) -> list[Device]:
        raise RuntimeError("the vendor SDK exploded")


class ExtraProbe:
    @hookimpl
    def probe_hardware(self) -> list[Device]:
        return [Device(kind="npu", name="Test NPU", memory_bytes=123)]


class AbsentProbe:
    @hookimpl
    def probe_hardware(self) -> None:
        return None


def test_failing_probe_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(BrokenProbe(), name="broken-probe")
    pm.register(ExtraProbe(), name="extra-probe")
    pm.register(AbsentProbe(), name="absent-probe")
    with caplog.at_level(logging.WARNING, logger="vllama.hardware"):
        hw = probe(pm)
    assert hw.cpu is not None and hw.cpu.kind == "cpu"
    assert hw.of_kind("npu") == (Device(kind="npu", name="Test NPU", memory_bytes=123),)
    failures = [r for r in caplog.records if r.name == "vllama.hardware"]
    assert len(failures) == 1
    assert "broken-probe" in failures[0].getMessage()
    assert failures[0].exc_info is not None and "exploded" in str(failures[0].exc_info[1])


def test_failing_probe_alone_gives_empty_hardware() -> None:
    pm = make_plugin_manager(load_entrypoints=False, builtins=False)
    pm.register(BrokenProbe(), name="broken-probe")
    assert probe(pm) == Hardware()
