"""The cgroup and /proc readers, on folders of files standing in for /proc and /sys/fs/cgroup (the
out-of-memory test in tests/jobs/stages reads the real ones)."""

from __future__ import annotations

from pathlib import Path

from shared.workers.cgroup import memory_cgroup
from shared.workers.host import host_memory, process_rss_bytes

GIB = 1024**3


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v1_group_reads_limit_usage_peak_and_oom_kills(tmp_path: Path) -> None:
    _write(tmp_path / "proc", "12:cpu,cpuacct:/x\n4:memory:/jobs/worker-1\n0::/x\n")
    group = tmp_path / "sys" / "memory" / "jobs" / "worker-1"
    _write(group / "memory.limit_in_bytes", f"{2 * GIB}\n")
    _write(group / "memory.stat", f"cache 10\nhierarchical_memory_limit {3 * GIB}\n")
    _write(group / "memory.usage_in_bytes", "1000\n")
    _write(group / "memory.max_usage_in_bytes", "5000\n")
    _write(group / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")

    cgroup = memory_cgroup(tmp_path / "proc", tmp_path / "sys")

    assert cgroup is not None and cgroup.version == 1 and cgroup.path == "/jobs/worker-1"
    assert (cgroup.limit_bytes(), cgroup.usage_bytes(), cgroup.peak_bytes(), cgroup.oom_kills()) == (
        2 * GIB,
        1000,
        5000,
        3,
    )


def test_v1_parent_limit_lower_than_the_group_s_own_wins(tmp_path: Path) -> None:
    _write(tmp_path / "proc", "4:memory:/a\n")
    group = tmp_path / "sys" / "memory" / "a"
    _write(group / "memory.limit_in_bytes", "9223372036854771712\n")  # "no limit"
    _write(group / "memory.stat", f"hierarchical_memory_limit {GIB}\n")
    cgroup = memory_cgroup(tmp_path / "proc", tmp_path / "sys")
    assert cgroup is not None and cgroup.limit_bytes() == GIB


def test_v1_without_any_limit_has_none(tmp_path: Path) -> None:
    _write(tmp_path / "proc", "4:memory:/\n")
    _write(tmp_path / "sys" / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    cgroup = memory_cgroup(tmp_path / "proc", tmp_path / "sys")
    assert cgroup is not None and cgroup.limit_bytes() is None and cgroup.oom_kills() is None


def test_v2_group_reads_memory_max_events_and_the_lowest_ancestor_limit(tmp_path: Path) -> None:
    _write(tmp_path / "proc", "0::/system.slice/temper.service\n")
    root = tmp_path / "sys"
    _write(root / "system.slice" / "memory.max", f"{GIB}\n")
    group = root / "system.slice" / "temper.service"
    _write(group / "memory.max", "max\n")
    _write(group / "memory.current", "4096\n")
    _write(group / "memory.peak", "8192\n")
    _write(group / "memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n")

    cgroup = memory_cgroup(tmp_path / "proc", root)

    assert cgroup is not None and cgroup.version == 2
    assert (cgroup.limit_bytes(), cgroup.usage_bytes(), cgroup.peak_bytes(), cgroup.oom_kills()) == (
        GIB,
        4096,
        8192,
        1,
    )


def test_no_memory_controller_is_none(tmp_path: Path) -> None:
    _write(tmp_path / "proc", "3:cpu:/x\n")
    assert memory_cgroup(tmp_path / "proc", tmp_path / "sys") is None


def test_host_memory_is_lowered_to_the_cgroup_limit(tmp_path: Path) -> None:
    _write(tmp_path / "meminfo", f"MemTotal: {24 * 1024 * 1024} kB\nMemAvailable: {20 * 1024 * 1024} kB\n")
    _write(tmp_path / "proc", "4:memory:/w\n")
    group = tmp_path / "sys" / "memory" / "w"
    _write(group / "memory.limit_in_bytes", f"{2 * GIB}\n")
    _write(group / "memory.usage_in_bytes", f"{GIB // 2}\n")
    cgroup = memory_cgroup(tmp_path / "proc", tmp_path / "sys")

    limited = host_memory(cgroup, tmp_path / "meminfo")
    unlimited = host_memory(None, tmp_path / "meminfo")

    assert (limited.total_bytes, limited.available_bytes, limited.limited_by) == (
        2 * GIB,
        GIB * 3 // 2,
        "cgroup",
    )
    # Without a readable cgroup (the real one may or may not have a limit), the host's figures.
    if unlimited.limited_by == "host":
        assert (unlimited.total_bytes, unlimited.available_bytes) == (24 * GIB, 20 * GIB)


def test_process_rss_reads_vmrss_and_high_water_mark(tmp_path: Path) -> None:
    _write(tmp_path / "42" / "status", "Name:\tpython\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n")
    assert process_rss_bytes(42, tmp_path) == (1024 * 1024, 2048 * 1024)
    assert process_rss_bytes(43, tmp_path) is None
