"""How a stage's worker process died, told from what the kernel counted rather than guessed.

When a stage starts, its run notes where it runs (host, memory cgroup) and the cgroup's OOM-kill
count; while it runs, the heartbeat thread records the process's peak memory on the job. When the
same stage comes back (Celery redelivered it after its process died, or the reaper re-sent it), the
new run compares:

- the cgroup's `oom_kill` count grew since the last run started, on the same host and cgroup: the
  kernel's OOM killer killed a process there. That is proof of an OOM kill in the group; with one
  training process per group it is this stage's.
- otherwise, a recorded peak within `NEAR_LIMIT_SHARE` of the limit: the process was at the wall
  when it vanished. A SIGKILL from the OOM killer is the likely cause, but not proven; the message
  says "likely".
- otherwise the worker was lost for a reason memory does not explain (`worker_lost`).
"""

from __future__ import annotations

import socket
from typing import Any

from shared.jobs.estimate import GIB
from shared.workers.cgroup import memory_cgroup
from shared.workers.host import host_memory

OUT_OF_MEMORY = "out_of_memory"
WORKER_LOST = "worker_lost"
NEAR_LIMIT_SHARE = 0.9


def snapshot() -> dict[str, Any]:
    """Where this process runs and what its cgroup has counted so far."""
    cgroup = memory_cgroup()
    return {
        "host": socket.gethostname(),
        "cgroup": cgroup.path if cgroup is not None else None,
        "oom_kills": cgroup.oom_kills() if cgroup is not None else None,
        "limit_bytes": host_memory(cgroup).total_bytes,
    }


def oom_killed_since(started: dict[str, Any] | None, now: dict[str, Any]) -> bool:
    """Whether the kernel OOM-killed a process in this cgroup since `started` was taken there."""
    if not started or started.get("host") != now.get("host") or started.get("cgroup") != now.get("cgroup"):
        return False
    before, after = started.get("oom_kills"), now.get("oom_kills")
    return before is not None and after is not None and after > before


def peak_near_limit(watch: dict[str, Any] | None, peak_bytes: int | None) -> bool:
    limit = (watch or {}).get("limit_bytes")
    return bool(peak_bytes and limit and peak_bytes >= NEAR_LIMIT_SHARE * limit)


def gave_up_message(
    stage: str, attempts: int, watch: dict[str, Any] | None, peak_bytes: int | None, oom_kills: int
) -> tuple[str, str]:
    """The code and message of a job whose stage died `attempts` times."""
    figures = _figures(watch, peak_bytes)
    if oom_kills:
        return OUT_OF_MEMORY, (
            f"{stage} was killed by the kernel's OOM killer ({oom_kills} time(s), counted by its memory "
            f"cgroup) and gave up after {attempts} attempts; {figures}. Lower hyperparameters.batch_size "
            "(or set it to 'auto') or max_seq_length, or turn on gradient_checkpointing"
        )
    if peak_near_limit(watch, peak_bytes):
        return OUT_OF_MEMORY, (
            f"{stage}'s worker process died at its memory limit (likely killed for memory) and gave up after "
            f"{attempts} attempts; {figures}"
        )
    return WORKER_LOST, f"{stage}'s worker process died {attempts} times (worker lost); {figures}"


def _figures(watch: dict[str, Any] | None, peak_bytes: int | None) -> str:
    watch = watch or {}
    parts = [f"peak memory seen {_gib(peak_bytes)}"]
    if watch.get("estimate_bytes"):
        parts.append(f"estimate {_gib(watch['estimate_bytes'])}")
    if watch.get("limit_bytes"):
        parts.append(f"limit {_gib(watch['limit_bytes'])}")
    return ", ".join(parts)


def _gib(value: int | None) -> str:
    return "unknown" if not value else f"{value / GIB:.2f} GiB"
