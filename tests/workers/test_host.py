"""What a worker advertises as free for a stage: available memory plus what its own pool processes
hold, read from a /proc tree laid out in a temporary folder (the real one is read in the OOM e2e)."""

from __future__ import annotations

from pathlib import Path

from shared.workers.host import MemoryFigures, descendants, free_for_stages

GIB = 1024**3


def _process(proc: Path, pid: int, children: list[int], rss_kib: int) -> None:
    task = proc / str(pid) / "task" / str(pid)
    task.mkdir(parents=True)
    (task / "children").write_text(" ".join(str(child) for child in children))
    (proc / str(pid) / "status").write_text(f"Name:\tpython\nVmHWM:\t{rss_kib} kB\nVmRSS:\t{rss_kib} kB\n")


def test_a_busy_worker_offers_what_its_pool_processes_hold(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    _process(proc, 100, [101, 102], 200 * 1024)  # the worker's main process: not counted
    _process(proc, 101, [103], 4 * 1024 * 1024)  # a pool process running a stage: 4 GiB
    _process(proc, 102, [], 1024 * 1024)  # an idle pool process: 1 GiB
    _process(proc, 103, [], 1024 * 1024)  # a child of the stage (a data loader): 1 GiB

    assert sorted(descendants(100, proc)) == [101, 102, 103]
    memory = MemoryFigures(total_bytes=24 * GIB, available_bytes=10 * GIB, limited_by="host")
    assert free_for_stages(memory, 100, proc) == 16 * GIB
    # Never more than the total.
    tight = MemoryFigures(total_bytes=12 * GIB, available_bytes=10 * GIB, limited_by="cgroup")
    assert free_for_stages(tight, 100, proc) == 12 * GIB
