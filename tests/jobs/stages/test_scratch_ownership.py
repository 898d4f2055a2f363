"""A run the reaper took the stage from, finishing late on the same machine, leaves the scratch folder
of the run that took over alone."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from shared.db.base import utcnow
from shared.jobs.run import JobRun
from shared.jobs.service import JobService
from shared.jobs.stages.runner import StageOutcome, run_stage
from tests.jobs.stages.test_runner import validated
from tests.support.job_rows import JobDatabase, job_database


@pytest.fixture
def db(tmp_path: Path, tiny_base_model: Path) -> JobDatabase:
    return job_database(tmp_path, tiny_base_model)


def test_a_run_taken_over_that_finishes_late_keeps_its_hands_off_the_new_runs_scratch(
    db: JobDatabase,
) -> None:
    job_id = db.submit()
    run_stage(db.context, job_id, "validate", validated, task_id="task-1")
    first_started, second_working, first_done = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def slow_first(run: JobRun) -> StageOutcome:
        (run.work_dir("train") / "first.txt").write_text("from the first run")
        first_started.set()
        assert second_working.wait(30)  # the worker was only slow: it finishes after the takeover
        return StageOutcome()

    def second(run: JobRun) -> StageOutcome:
        checkpoint = run.work_dir("train") / "checkpoint-10"
        checkpoint.write_text("weights")
        second_working.set()
        assert first_done.wait(30)
        seen["checkpoint after the first run ended"] = checkpoint.exists()
        return StageOutcome()

    answers: dict[str, str | None] = {}
    first = threading.Thread(
        target=lambda: answers.update(
            first=run_stage(db.context, job_id, "train", slow_first, task_id="task-2")
        )
    )
    first.start()
    assert first_started.wait(30)
    # The reaper saw no heartbeat for longer than the timeout and re-sent the stage.
    with db.session() as session:
        job = JobService(session).jobs.get(job_id)
        assert job is not None
        job.heartbeat_at = utcnow() - db.context.settings.heartbeat_timeout - timedelta(seconds=1)
    second_run = threading.Thread(
        target=lambda: answers.update(second=run_stage(db.context, job_id, "train", second, task_id="task-3"))
    )
    second_run.start()
    first.join(30)
    first_done.set()
    second_run.join(30)

    assert answers["first"] is None  # taken over: it records nothing
    assert seen == {"checkpoint after the first run ended": True}
    assert answers["second"] == "evaluate"
    job = db.job(job_id)
    assert job.task_id == "task-3" and job.status == "evaluating"
    assert (db.context.job_dir(job_id) / "train" / "checkpoint-10").exists()


def test_the_owning_run_still_cleans_its_scratch_when_the_job_ends(db: JobDatabase) -> None:
    job_id = db.submit()

    def fails(run: JobRun) -> StageOutcome:
        (run.work_dir("validate") / "rows.arrow").write_text("x")
        raise ValueError("a bug")

    assert run_stage(db.context, job_id, "validate", fails, task_id="task-1") is None
    assert db.job(job_id).status == "failed"
    assert not (db.context.settings.work_dir / "jobs" / str(job_id)).exists()
