"""A cgroup v1 memory group for a test's worker: the kernel enforces its limit (and OOM-kills past it)
exactly as a container's memory limit would, and the worker advertises it as its memory.

Verified on these machines: cgroup v1's memory controller is mounted and writable by root, and a
process past a child group's `memory.limit_in_bytes` is killed by the kernel (`oom_kill` counted in
`memory.oom_control`). Under CI=true a group that cannot be made fails the test instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.support.stack import REPO_ROOT, worker_env

MEMORY_ROOT = Path("/sys/fs/cgroup/memory")


def own_memory_cgroup() -> Path:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return MEMORY_ROOT / path.lstrip("/")
    raise FileNotFoundError("no cgroup v1 memory controller for this process")


@contextmanager
def memory_group(limit_bytes: int) -> Iterator[Path]:
    """A child memory group of this test's own, limited to `limit_bytes`; removed afterwards."""
    try:
        group = own_memory_cgroup() / f"temper-test-{uuid.uuid4().hex[:8]}"
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(limit_bytes))
    except OSError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cgroup v1 memory is not writable here: {exc}")
        pytest.skip(f"cgroup v1 memory is not writable here: {exc}")
    try:
        yield group
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.2)


def oom_kills(group: Path) -> int:
    figures = dict(line.split() for line in (group / "memory.oom_control").read_text().splitlines())
    return int(figures["oom_kill"])


def worker_in(
    group: Path, settings: Settings, log: Path, app: str = "services.worker.app"
) -> subprocess.Popen[bytes]:
    """A real Celery worker (every queue, one pool process) that joins `group` before it starts, so
    its pool processes are born in it."""
    celery = [
        sys.executable, "-m", "celery", "-A", app, "worker",
        "-Q", "default,train,evaluate,export", "-c", "1", "--pool", "prefork",
        "--without-gossip", "--without-mingle", "-l", "INFO",
    ]  # fmt: skip
    command = f"echo $$ > {group / 'cgroup.procs'} && exec " + " ".join(celery)
    return subprocess.Popen(
        ["sh", "-c", command],
        cwd=REPO_ROOT,
        env=worker_env(settings),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """A warm shutdown, then nothing of its process group left (a pool process stuck in a stage)."""
    worker.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
