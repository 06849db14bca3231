"""Built-in hardware probes: the CPU, NVIDIA GPUs (NVML or nvidia-smi) and Apple silicon.

None of them imports torch or an engine; each returns None when its hardware is absent.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

from vllama.cgroups import cgroup_memory
from vllama.hookspecs import hookimpl
from vllama.types import Device

#: CPU flags that matter to engines; /proc/cpuinfo lists hundreds.
_CPU_FLAGS = (
    "avx",
    "avx2",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "fma",
    "f16c",
    "sse4_2",
    "neon",
    "asimd",
    "sve",
)


@hookimpl(specname="probe_hardware")
def probe_cpu() -> list[Device]:
    """The CPU is always there."""
    return [cpu_device()]


def cpu_device() -> Device:
    name, flags = _cpuinfo()
    return Device(
        kind="cpu",
        name=name or platform.processor() or platform.machine(),
        cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
        memory_bytes=_memory_bytes(),
        features=tuple(f for f in _CPU_FLAGS if f in flags),
    )


def _cpuinfo() -> tuple[str, set[str]]:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        if platform.system() == "Darwin":
            brand = _sysctl("machdep.cpu.brand_string")
            return brand, {"neon"} if platform.machine() == "arm64" else set()
        return "", set()
    name, flags = "", set[str]()
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and not name:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return name, flags


def meminfo_bytes(field: str) -> int | None:
    """A field of Linux's ``/proc/meminfo`` (``MemTotal``, ``MemAvailable``) in bytes; None
    where there is no such file or field."""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def _memory_bytes() -> int:
    if (total := meminfo_bytes("MemTotal")) is not None:
        limit = cgroup_memory()
        return total if limit is None else min(total, limit.limit)
    if platform.system() == "Darwin":
        value = _sysctl("hw.memsize")
        return int(value) if value.isdigit() else 0
    return 0


def _sysctl(key: str) -> str:
    try:
        return subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


@hookimpl(specname="probe_hardware")
def probe_nvidia() -> list[Device] | None:
    """NVIDIA GPUs through NVML when pynvml is installed, else ``nvidia-smi``."""
    return _nvml_devices() or _nvidia_smi_devices()


def _nvml_devices() -> list[Device] | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
            name = pynvml.nvmlDeviceGetName(h)
            out.append(
                Device(
                    kind="cuda",
                    index=i,
                    name=name.decode() if isinstance(name, bytes) else name,
                    memory_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(h).total),
                    features=(f"{major}.{minor}",),
                    driver=driver.decode() if isinstance(driver, bytes) else driver,
                )
            )
        return out or None
    finally:
        pynvml.nvmlShutdown()


def _nvidia_smi_devices() -> list[Device] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    query = "index,name,memory.total,compute_cap,driver_version"
    try:
        result = subprocess.run(
            [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_nvidia_smi(result.stdout) or None


def parse_nvidia_smi(text: str) -> list[Device]:
    """Parse ``nvidia-smi --query-gpu=index,name,memory.total,compute_cap,driver_version``."""
    out = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5 or not parts[0].isdigit():
            continue
        index, name, mem_mib, cap, driver = parts
        out.append(
            Device(
                kind="cuda",
                index=int(index),
                name=name,
                memory_bytes=int(float(mem_mib)) * 1024 * 1024 if mem_mib.replace(".", "").isdigit() else 0,
                features=(cap,),
                driver=driver,
            )
        )
    return out


@hookimpl(specname="probe_hardware")
def probe_apple() -> list[Device] | None:
    """Apple silicon: one Metal GPU sharing the machine's unified memory."""
    if platform.system() != "Darwin" or platform.machine() != "arm64":
        return None
    return [Device(kind="metal", name=_sysctl("machdep.cpu.brand_string") or "Apple silicon", memory_bytes=_memory_bytes())]
