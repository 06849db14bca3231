"""Memory limits of Linux control groups (v2 and v1): what a container or a systemd unit may use.

A process under a memory limit (``docker run --memory``, compose's ``mem_limit``, systemd's
``MemoryMax``, a Kubernetes pod) sees the whole machine in ``/proc/meminfo``, but the kernel
kills it at the limit. The limit is the tightest over the process's cgroup and its ancestors up
to the cgroup mount; what remains under it is the limit less the working set (the cgroup's
usage less its inactive file pages, which the kernel reclaims before it kills).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: A v1 limit at or above this is no limit (the kernel writes ``PAGE_COUNTER_MAX`` pages, about 2**63).
_V1_UNLIMITED = 2**62


@dataclass(frozen=True)
class CgroupMemory:
    """The tightest memory limit over a process's cgroup and its ancestors, and the least room
    left under any of those limits, in bytes."""

    limit: int
    available: int


@dataclass(frozen=True)
class _Hierarchy:
    """Where the memory controller's files are: the mounted directory of the process's cgroup
    and the mount point, the highest directory whose files apply."""

    version: int
    leaf: Path
    mount: Path


def cgroup_memory(root: Path = Path("/")) -> CgroupMemory | None:
    """The memory limit on this process; None where there is none (or no cgroup file system).

    ``root`` is the file system root (``/proc`` and the cgroup mounts are read under it)."""
    hierarchy = _hierarchy(root)
    if hierarchy is None:
        return None
    limits: list[int] = []
    room: list[int] = []
    directory = hierarchy.leaf
    while True:
        limit = _limit(directory, hierarchy.version)
        if limit is not None:
            limits.append(limit)
            usage = _read_int(directory / ("memory.current" if hierarchy.version == 2 else "memory.usage_in_bytes"))
            if usage is not None:
                inactive = _stat(directory, "inactive_file" if hierarchy.version == 2 else "total_inactive_file")
                room.append(max(limit - max(usage - inactive, 0), 0))
        if directory == hierarchy.mount or directory.parent == directory:
            break
        directory = directory.parent
    if not limits:
        return None
    return CgroupMemory(limit=min(limits), available=min(room, default=min(limits)))


def _hierarchy(root: Path) -> _Hierarchy | None:
    """The memory controller's hierarchy for this process: v1's ``memory`` controller where it
    is mounted (a hybrid system accounts memory there), else the v2 unified hierarchy."""
    paths = parse_proc_cgroup(_read_text(root / "proc/self/cgroup"))
    mounts = parse_mountinfo(_read_text(root / "proc/self/mountinfo"))
    for version, key in ((1, "memory"), (2, "")):
        if key not in paths:
            continue
        for fstype, options, mount_root, mount_point in mounts:
            if (version == 2 and fstype == "cgroup2") or (version == 1 and fstype == "cgroup" and "memory" in options):
                mount = root / mount_point.lstrip("/")
                return _Hierarchy(version, mount / _relative(paths[key], mount_root), mount)
    return None


def _relative(path: str, mount_root: str) -> str:
    """The cgroup ``path`` relative to the cgroup a mount shows at its top: empty when the
    path is not below it (a cgroup namespace shows its own root as ``/``), and never upwards."""
    cgroup, top = PurePosixPath(path), PurePosixPath(mount_root)
    if cgroup == top or top not in cgroup.parents or ".." in cgroup.parts:
        return ""
    return str(cgroup.relative_to(top))


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as ``{controller: path}``: v1 lines give one entry per controller
    (``4:memory:/docker/abc``, ``5:cpu,cpuacct:/``), the v2 line (``0::/user.slice``) the key ``""``."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            paths.setdefault(controller, path)
    return paths


def parse_mountinfo(text: str) -> list[tuple[str, frozenset[str], str, str]]:
    """The cgroup mounts in ``/proc/self/mountinfo``: (file system type, super options, the
    cgroup at the mount's top, mount point) for each ``cgroup`` and ``cgroup2`` line."""
    mounts = []
    for line in text.splitlines():
        fields, sep, tail = line.partition(" - ")
        before, after = fields.split(), tail.split()
        if not sep or len(before) < 5 or len(after) < 3 or after[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append((after[0], frozenset(after[2].split(",")), _unescape(before[3]), _unescape(before[4])))
    return mounts


def _unescape(field: str) -> str:
    """A mountinfo path with its octal escapes (``\\040`` for a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _limit(directory: Path, version: int) -> int | None:
    if version == 2:
        text = _read_text(directory / "memory.max").strip()
        return int(text) if text.isdigit() else None
    value = _read_int(directory / "memory.limit_in_bytes")
    return value if value is not None and value < _V1_UNLIMITED else None


def _stat(directory: Path, key: str) -> int:
    for line in _read_text(directory / "memory.stat").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


def _read_int(path: Path) -> int | None:
    text = _read_text(path).strip()
    return int(text) if text.isdigit() else None


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""
