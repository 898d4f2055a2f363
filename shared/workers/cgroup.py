"""What the kernel says about this process's memory: its cgroup's limit, usage, peak and OOM kills.

Both cgroup versions are read: v1 (a `memory` hierarchy, `memory.limit_in_bytes`,
`memory.oom_control`) and v2 (the unified hierarchy, `memory.max`, `memory.events`). The roots are
arguments so that a test can stand a folder of files in for /proc and /sys/fs/cgroup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PROC_SELF_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# v1 writes "no limit" as the largest page-aligned signed 64-bit number; anything this large is none.
NO_LIMIT_THRESHOLD = 1 << 60


@dataclass(frozen=True)
class MemoryCgroup:
    """The memory cgroup a process is in, as a folder of the cgroup filesystem."""

    version: Literal[1, 2]
    directory: Path
    # Its path inside the hierarchy ("/process_api/abc"): what tells two workers' cgroups apart.
    path: str

    def limit_bytes(self) -> int | None:
        """The limit that applies to the group, its ancestors' included; None when none is set."""
        if self.version == 1:
            limits = [_read_int(self.directory / "memory.limit_in_bytes")]
            # The effective limit, ancestors included, is in memory.stat.
            limits.append(_stat_value(self.directory / "memory.stat", "hierarchical_memory_limit"))
        else:
            limits = [_read_int(directory / "memory.max") for directory in self._v2_ancestry()]
        real = [limit for limit in limits if limit is not None and limit < NO_LIMIT_THRESHOLD]
        return min(real) if real else None

    def usage_bytes(self) -> int | None:
        return _read_int(
            self.directory / ("memory.usage_in_bytes" if self.version == 1 else "memory.current")
        )

    def peak_bytes(self) -> int | None:
        """The group's high-water mark since it was made (v2 needs a 5.19 kernel for memory.peak)."""
        return _read_int(
            self.directory / ("memory.max_usage_in_bytes" if self.version == 1 else "memory.peak")
        )

    def oom_kills(self) -> int | None:
        """How many processes the kernel's OOM killer has killed in this group; None when the
        kernel does not count them (v1 before 4.13)."""
        if self.version == 1:
            return _stat_value(self.directory / "memory.oom_control", "oom_kill")
        return _stat_value(self.directory / "memory.events", "oom_kill")

    def _v2_ancestry(self) -> list[Path]:
        directories = [self.directory]
        depth = len([part for part in self.path.split("/") if part])
        for _ in range(depth):
            directories.append(directories[-1].parent)
        return directories


def memory_cgroup(proc_cgroup: Path = PROC_SELF_CGROUP, root: Path = CGROUP_ROOT) -> MemoryCgroup | None:
    """The memory cgroup of the process whose /proc/<pid>/cgroup is `proc_cgroup`; None when memory
    is not under a cgroup controller this process can read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    unified: str | None = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            # v1: the memory hierarchy. Inside a container its own group is mounted at the root.
            for directory in (root / "memory" / path.lstrip("/"), root / "memory"):
                if (directory / "memory.limit_in_bytes").is_file():
                    return MemoryCgroup(1, directory, path)
        if controllers == "":
            unified = path
    if unified is not None:
        for directory in (root / unified.lstrip("/"), root):
            if (directory / "memory.max").is_file() or (directory / "memory.current").is_file():
                return MemoryCgroup(2, directory, unified)
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat_value(path: Path, key: str) -> int | None:
    """The value of `key` in a "name value" per line file (memory.stat, memory.events, oom_control)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(" ")
        if name == key:
            try:
                return int(value)
            except ValueError:
                return None
    return None
