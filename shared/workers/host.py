"""The memory and devices this worker process has, for the `workers` table and the train stage.

A cgroup limit (a container's memory limit, a systemd slice) is what the kernel enforces, so it wins
over the host's total when it is lower; the host's MemAvailable still bounds what is free.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shared.workers.cgroup import MemoryCgroup, memory_cgroup

PROC_MEMINFO = Path("/proc/meminfo")
NVIDIA_DRIVER = Path("/proc/driver/nvidia")


@dataclass(frozen=True)
class MemoryFigures:
    total_bytes: int
    available_bytes: int
    limited_by: Literal["cgroup", "host"]


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    memory_total_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "memory_total_bytes": self.memory_total_bytes}


@dataclass(frozen=True)
class HostResources:
    memory: MemoryFigures
    devices: list[Device] = field(default_factory=list)
    # What a stage would have here (`free_for_stages`); the memory's available figure when unset.
    free_bytes: int | None = None


def host_memory(cgroup: MemoryCgroup | None = None, meminfo: Path = PROC_MEMINFO) -> MemoryFigures:
    """This process's memory: the host's total and available, lowered to its cgroup's limit."""
    info = _meminfo(meminfo)
    total = info.get("MemTotal", 0)
    available = info.get("MemAvailable", total)
    cgroup = cgroup if cgroup is not None else memory_cgroup()
    limit = cgroup.limit_bytes() if cgroup is not None else None
    if cgroup is None or limit is None or limit >= total:
        return MemoryFigures(total, available, "host")
    used = cgroup.usage_bytes() or 0
    return MemoryFigures(limit, max(0, min(available, limit - used)), "cgroup")


# Run in a child process: CUDA initialised in a Celery worker's main process would break every pool
# process it forks afterwards ("Cannot re-initialize CUDA in forked subprocess").
_DEVICE_PROBE = """
import json
try:
    import torch
except ImportError:
    print("[]")
else:
    found = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            found.append([index, properties.name, properties.total_memory])
    print(json.dumps(found))
"""
DEVICE_PROBE_TIMEOUT_S = 120


def cuda_devices() -> list[Device]:
    """The CUDA devices torch sees, with their memory; none on a CPU worker (or without torch).
    Without an NVIDIA driver on the host there is nothing to ask torch about (and no import of it)."""
    if not NVIDIA_DRIVER.exists():
        return []
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _DEVICE_PROBE],
            capture_output=True,
            text=True,
            timeout=DEVICE_PROBE_TIMEOUT_S,
            check=True,
        )
        found = json.loads(probe.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return []
    return [Device(int(index), str(name), int(memory)) for index, name, memory in found]


def process_rss_bytes(pid: int | None = None, proc: Path = Path("/proc")) -> tuple[int, int] | None:
    """The resident set of a process now and its high-water mark (VmRSS, VmHWM), in bytes."""
    status = proc / str(pid if pid is not None else os.getpid()) / "status"
    values = _meminfo(status)
    if "VmRSS" not in values:
        return None
    return values["VmRSS"], values.get("VmHWM", values["VmRSS"])


def descendants(pid: int | None = None, proc: Path = Path("/proc")) -> list[int]:
    """The process ids of a process's children, their children, and so on (Linux's `children` files)."""
    found: list[int] = []
    pending = [pid if pid is not None else os.getpid()]
    while pending:
        parent = pending.pop()
        for task in (proc / str(parent) / "task").glob("*/children"):
            try:
                children = [int(child) for child in task.read_text().split()]
            except (OSError, ValueError):
                continue
            found.extend(children)
            pending.extend(children)
    return found


def free_for_stages(memory: MemoryFigures, pid: int | None = None, proc: Path = Path("/proc")) -> int:
    """What a stage on this worker would have once the worker's own stages are done: what is
    available now plus what this process's children (the pool processes that run stages) hold,
    never more than the total. A busy worker is not small: its job ends before the next starts."""
    held = 0
    for child in descendants(pid, proc):
        rss = process_rss_bytes(child, proc)
        held += rss[0] if rss else 0
    return min(memory.total_bytes, memory.available_bytes + held)


def _meminfo(path: Path) -> dict[str, int]:
    """ "Name:   123 kB" lines as bytes."""
    figures: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return figures
    for line in lines:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            figures[name.strip()] = int(parts[0]) * scale
    return figures
