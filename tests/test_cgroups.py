"""Memory limits of cgroups v2 and v1, read from fake ``/proc`` and cgroup trees laid out as
containers, systemd units and hybrid hosts lay them out."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllama import cgroups, memory, probes
from vllama.cgroups import CgroupMemory, cgroup_memory, parse_mountinfo, parse_proc_cgroup

GiB = 2**30
MiB = 2**20
V1_UNLIMITED = 9223372036854771712  # what a v1 cgroup without a limit shows

V2_MOUNT = "30 23 0:26 {root} /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot"
V1_MOUNT = "40 33 0:35 {root} /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,memory"
V1_CPU_MOUNT = "39 33 0:34 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct"
HYBRID_V2_MOUNT = "35 33 0:30 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate"
ROOT_MOUNT = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def proc(cgroup: str, *mounts: str) -> dict[str, str]:
    return {"proc/self/cgroup": cgroup, "proc/self/mountinfo": "\n".join((ROOT_MOUNT, *mounts)) + "\n"}


def v2_dir(directory: str, limit: int | str, current: int, inactive_file: int = 0) -> dict[str, str]:
    return {
        f"{directory}/memory.max": f"{limit}\n",
        f"{directory}/memory.current": f"{current}\n",
        f"{directory}/memory.stat": f"anon {current - inactive_file}\nfile {inactive_file}\ninactive_file {inactive_file}\n",
    }


def v1_dir(directory: str, limit: int, usage: int, inactive_file: int = 0) -> dict[str, str]:
    return {
        f"{directory}/memory.limit_in_bytes": f"{limit}\n",
        f"{directory}/memory.usage_in_bytes": f"{usage}\n",
        f"{directory}/memory.stat": f"cache {inactive_file}\ninactive_file 1\ntotal_inactive_file {inactive_file}\n",
    }


def test_v2_container_with_a_cgroup_namespace(tmp_path: Path) -> None:
    """``docker run --memory 1g``: the container's cgroup is the mount's top."""
    write(tmp_path, proc("0::/\n", V2_MOUNT.format(root="/")) | v2_dir("sys/fs/cgroup", GiB, 300 * MiB, 100 * MiB))
    assert cgroup_memory(tmp_path) == CgroupMemory(limit=GiB, available=GiB - 200 * MiB)


def test_v2_without_a_limit(tmp_path: Path) -> None:
    write(tmp_path, proc("0::/\n", V2_MOUNT.format(root="/")) | v2_dir("sys/fs/cgroup", "max", 300 * MiB))
    assert cgroup_memory(tmp_path) is None


def test_v2_the_tightest_limit_of_the_ancestors(tmp_path: Path) -> None:
    """A systemd unit under a slice: the slice's lower limit and its usage (its other units
    count) bound the unit."""
    files = proc("0::/system.slice/vllama.service\n", V2_MOUNT.format(root="/"))
    files |= v2_dir("sys/fs/cgroup/system.slice", 2 * GiB, 1800 * MiB)
    files |= v2_dir("sys/fs/cgroup/system.slice/vllama.service", 4 * GiB, 500 * MiB)
    write(tmp_path, files)
    assert cgroup_memory(tmp_path) == CgroupMemory(limit=2 * GiB, available=248 * MiB)


def test_v2_room_is_never_negative(tmp_path: Path) -> None:
    write(tmp_path, proc("0::/\n", V2_MOUNT.format(root="/")) | v2_dir("sys/fs/cgroup", GiB, GiB + MiB))
    assert cgroup_memory(tmp_path) == CgroupMemory(limit=GiB, available=0)


def test_v1_container_without_a_cgroup_namespace(tmp_path: Path) -> None:
    """cgroup v1 Docker: /proc/self/cgroup names the host's path, the mount shows that cgroup at its top."""
    files = proc("5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n", V1_CPU_MOUNT, V1_MOUNT.format(root="/docker/abc"))
    files |= v1_dir("sys/fs/cgroup/memory", 512 * MiB, 200 * MiB, 50 * MiB)
    write(tmp_path, files)
    assert cgroup_memory(tmp_path) == CgroupMemory(limit=512 * MiB, available=362 * MiB)


def test_v1_host_path_below_the_mount(tmp_path: Path) -> None:
    files = proc("4:memory:/process_api/abc\n", V1_MOUNT.format(root="/"))
    files |= v1_dir("sys/fs/cgroup/memory", V1_UNLIMITED, 13 * GiB)
    files |= v1_dir("sys/fs/cgroup/memory/process_api", V1_UNLIMITED, 5 * GiB)
    files |= v1_dir("sys/fs/cgroup/memory/process_api/abc", 3 * GiB, GiB)
    write(tmp_path, files)
    assert cgroup_memory(tmp_path) == CgroupMemory(limit=3 * GiB, available=2 * GiB)


def test_v1_unlimited(tmp_path: Path) -> None:
    write(tmp_path, proc("4:memory:/\n", V1_MOUNT.format(root="/")) | v1_dir("sys/fs/cgroup/memory", V1_UNLIMITED, GiB))
    assert cgroup_memory(tmp_path) is None


def test_hybrid_hosts_account_memory_in_v1(tmp_path: Path) -> None:
    """systemd's hybrid layout: v2 is mounted too (at ``unified``) but has no memory controller."""
    files = proc("4:memory:/user.slice\n0::/user.slice/session-1.scope\n", HYBRID_V2_MOUNT, V1_MOUNT.format(root="/"))
    files |= v1_dir("sys/fs/cgroup/memory/user.slice", 8 * GiB, 2 * GiB)
    files |= {"sys/fs/cgroup/unified/user.slice/session-1.scope/memory.max": f"{GiB}\n"}
    write(tmp_path, files)
    assert cgroup_memory(tmp_path) == CgroupMemory(limit=8 * GiB, available=6 * GiB)


def test_no_cgroup_file_system(tmp_path: Path) -> None:
    """macOS, or a Linux without /proc: no limit."""
    assert cgroup_memory(tmp_path) is None
    write(tmp_path, proc("0::/\n"))
    assert cgroup_memory(tmp_path) is None


def test_a_path_outside_the_namespace_reads_the_mount_top(tmp_path: Path) -> None:
    """A process in a cgroup above its namespace's root sees ``/..``: never read outside the mount."""
    write(tmp_path, proc("0::/../../other\n", V2_MOUNT.format(root="/")) | v2_dir("sys/fs/cgroup", GiB, 0))
    assert cgroup_memory(tmp_path) == CgroupMemory(limit=GiB, available=GiB)


def test_parse_proc_cgroup() -> None:
    text = "12:memory:/docker/x\n5:cpu,cpuacct:/a\n1:name=systemd:/s\n0::/user.slice\nmalformed\n"
    assert parse_proc_cgroup(text) == {"memory": "/docker/x", "cpu": "/a", "cpuacct": "/a", "name=systemd": "/s", "": "/user.slice"}


def test_parse_mountinfo_unescapes_paths() -> None:
    line = r"30 23 0:26 /a\040b /mnt/cg\040two rw shared:4 - cgroup2 cgroup2 rw"
    assert parse_mountinfo(line + "\n" + ROOT_MOUNT) == [("cgroup2", frozenset({"rw"}), "/a b", "/mnt/cg two")]


sizes = st.integers(min_value=1, max_value=2**50)


#: Each example writes a cgroup tree to disk: no per-example deadline on a busy machine.
files_settings = settings(deadline=None, max_examples=50)


@files_settings
@given(version=st.sampled_from([1, 2]), limit=sizes, usage=st.integers(0, 2**50), inactive=st.integers(0, 2**50))
def test_room_under_any_limit(version: int, limit: int, usage: int, inactive: int) -> None:
    """The room is the limit less the working set (usage less inactive file pages, at least 0), within [0, limit]."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if version == 2:
            write(root, proc("0::/\n", V2_MOUNT.format(root="/")) | v2_dir("sys/fs/cgroup", limit, usage, inactive))
        else:
            write(root, proc("4:memory:/\n", V1_MOUNT.format(root="/")) | v1_dir("sys/fs/cgroup/memory", limit, usage, inactive))
        found = cgroup_memory(root)
    assert found == CgroupMemory(limit=limit, available=max(limit - max(usage - inactive, 0), 0))
    assert 0 <= found.available <= found.limit


@files_settings
@given(limits=st.lists(st.one_of(sizes, st.none()), min_size=1, max_size=5))
def test_the_tightest_of_nested_limits(limits: list[int | None]) -> None:
    """Each level of a nested v2 path may have a limit or ``max``; the tightest applies."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        levels = [f"l{i}" for i in range(len(limits))]
        files = proc("0::/" + "/".join(levels) + "\n", V2_MOUNT.format(root="/"))
        for depth, limit in enumerate(limits):
            files |= v2_dir("/".join(["sys/fs/cgroup", *levels[: depth + 1]]), "max" if limit is None else limit, 0)
        write(root, files)
        found = cgroup_memory(root)
    set_limits = [limit for limit in limits if limit is not None]
    assert found == (CgroupMemory(limit=min(set_limits), available=min(set_limits)) if set_limits else None)


@pytest.fixture
def container_1g(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CgroupMemory:
    """This process seen as in a v2 container limited to 1 GiB with 300 MiB in use."""
    write(tmp_path, proc("0::/\n", V2_MOUNT.format(root="/")) | v2_dir("sys/fs/cgroup", GiB, 300 * MiB))
    fake = cgroups.cgroup_memory(tmp_path)
    assert fake is not None
    for module in (memory, probes):
        monkeypatch.setattr(module, "cgroup_memory", lambda: cgroups.cgroup_memory(tmp_path))
    return fake


def test_memory_sees_the_container_limit(container_1g: CgroupMemory) -> None:
    """The fit check, the worker bound and the CPU device all see 1 GiB, not the machine's memory."""
    assert memory.total_bytes() == GiB
    assert memory.worker_limit(None) == GiB
    assert memory.system_available_bytes() == GiB - 300 * MiB
    assert probes.cpu_device().memory_bytes == GiB


def test_a_real_cgroup_limit(tmp_path: Path) -> None:
    """A process moved into a new child cgroup with a 1 GiB limit sees it (root on a writable cgroup
    file system: a CI runner, this machine; elsewhere the kernel refuses and the test is skipped)."""
    hierarchy = cgroups._hierarchy(Path("/"))
    if hierarchy is None:
        pytest.skip("no cgroup memory controller mounted")
    child = hierarchy.leaf / f"vllama-test-{os.getpid()}"
    limit_file = "memory.max" if hierarchy.version == 2 else "memory.limit_in_bytes"
    try:
        child.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup here: {exc}")
    try:
        try:
            (child / limit_file).write_text(str(GiB))
        except OSError as exc:
            pytest.skip(f"cannot set a memory limit here: {exc}")
        code = (
            f"import os; open({str(child / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))\n"
            "from vllama.cgroups import cgroup_memory; from vllama import memory\n"
            "m = cgroup_memory(); print(m.limit, m.available, memory.total_bytes())"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ | {"PYTHONPATH": ":".join(sys.path)}
        )
        assert result.returncode == 0, result.stderr
        limit, available, total = map(int, result.stdout.split())
        assert limit == total == GiB and 0 < available < GiB
    finally:
        child.rmdir()
