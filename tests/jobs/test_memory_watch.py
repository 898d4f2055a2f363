"""A stage whose worker process keeps dying: every redelivery counts an attempt, and past the cap the
job fails with `out_of_memory` when the cgroup counted OOM kills (with the peak and the estimate), or
`worker_lost` when nothing says memory. The watch dicts stand in for what `memory_watch.snapshot()`
reads from a real cgroup (tests/jobs/stages/test_out_of_memory.py reads the real one)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from shared.jobs.service import JobService
from tests.support.job_rows import JobDatabase, job_database

GIB = 1024**3


@pytest.fixture
def db(tmp_path: Path, tiny_base_model: Path) -> JobDatabase:
    return job_database(tmp_path, tiny_base_model)


def _watch(oom_kills: int, host: str = "w1") -> dict[str, object]:
    return {"host": host, "cgroup": "/workers/w1", "oom_kills": oom_kills, "limit_bytes": 2 * GIB}


def _training(db: JobDatabase) -> uuid.UUID:
    job_id = db.submit(evaluation=None)
    with db.session() as session:
        service = JobService(session)
        job = service.jobs.get(job_id)
        assert job is not None
        service.start_stage(job, "validate", "task-validate")
        service.complete_stage(job, "validate", None, cancelled=False)
    return job_id


def _deliver(db: JobDatabase, job_id: uuid.UUID, watch: dict[str, object], peak: int | None = None) -> str:
    """The train task delivered (again, with the same task id) to a worker whose cgroup reads `watch`."""
    with db.session() as session:
        service = JobService(session)
        job = service.jobs.get(job_id, for_update=True)
        assert job is not None
        decision = service.start_stage(job, "train", "task-train", max_attempts=3, watch=watch)
        if decision == "run":
            service.note_memory_watch(job, {"estimate_bytes": GIB})
            if peak is not None:
                service.record_peak_memory(job, peak)
        return decision


def test_oom_killed_runs_end_out_of_memory_at_the_cap_with_peak_and_estimate(db: JobDatabase) -> None:
    job_id = _training(db)
    assert _deliver(db, job_id, _watch(0), peak=int(1.9 * GIB)) == "run"
    assert _deliver(db, job_id, _watch(1)) == "run"
    assert _deliver(db, job_id, _watch(2)) == "run"
    assert _deliver(db, job_id, _watch(3)) == "skip"

    job = db.job(job_id)
    assert job.status == "failed" and job.error_code == "out_of_memory" and job.error_stage == "train"
    assert job.attempt == 4 and job.running_stage is None
    message = job.error_message or ""
    assert "OOM killer (3 time(s)" in message and "after 3 attempts" in message
    assert (
        "peak memory seen 1.90 GiB" in message
        and "estimate 1.00 GiB" in message
        and "limit 2.00 GiB" in message
    )
    # A fourth delivery of the same message changes nothing.
    assert _deliver(db, job_id, _watch(4)) == "skip"


def test_runs_lost_without_an_oom_kill_end_worker_lost(db: JobDatabase) -> None:
    job_id = _training(db)
    for _ in range(3):
        assert _deliver(db, job_id, _watch(5)) == "run"
    assert _deliver(db, job_id, _watch(5)) == "skip"
    job = db.job(job_id)
    assert job.error_code == "worker_lost" and "died 3 times" in (job.error_message or "")


def test_a_counter_on_another_host_proves_nothing(db: JobDatabase) -> None:
    job_id = _training(db)
    assert _deliver(db, job_id, _watch(0, host="w1")) == "run"
    for oom_kills in (7, 8):
        assert _deliver(db, job_id, _watch(oom_kills, host="w2")) == "run"
    assert _deliver(db, job_id, _watch(8, host="w2")) == "skip"
    # w1 -> w2 proves nothing; w2 7 -> 8 is one kill on w2; the last run on w2 was not OOM-killed.
    message = db.job(job_id).error_message or ""
    assert db.job(job_id).error_code == "out_of_memory" and "(1 time(s)" in message


def test_a_hand_back_is_not_a_failed_attempt(db: JobDatabase) -> None:
    job_id = _training(db)
    assert _deliver(db, job_id, _watch(0)) == "run"
    for _ in range(4):
        with db.session() as session:
            service = JobService(session)
            job = service.jobs.get(job_id)
            assert job is not None
            service.hand_back_stage(job, "train", "worker shutting down", {})
        assert _deliver(db, job_id, _watch(0)) == "run"
    assert db.job(job_id).status == "training"


def test_a_transient_retry_is_not_a_failed_attempt(db: JobDatabase) -> None:
    """Celery's retry count grows when a run gave the task back for a transient error (capped by
    `transient_retry_limit` and failed `transient_exhausted` there); only a redelivery of the same
    message, its count unchanged, is a run that died."""
    job_id = _training(db)
    for retries in range(5):
        assert _deliver(db, job_id, {**_watch(0), "retries": retries}) == "run"
    assert db.job(job_id).status == "training"
    # The same retry delivered again three times over: died, died, died.
    for _ in range(2):
        assert _deliver(db, job_id, {**_watch(0), "retries": 4}) == "run"
    assert _deliver(db, job_id, {**_watch(0), "retries": 4}) == "skip"
    assert db.job(job_id).error_code == "worker_lost"
