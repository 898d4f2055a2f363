"""The stage runner on its own: what it records for each way a stage can end, and what it sends.

Stage bodies here are small functions; the database is real (SQLite) and every write goes through
the run handle, so these tests see exactly the rows and the outbox effects a worker would leave.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from shared.db.models import JobEvent, Study
from shared.db.outbox import AdvanceStudy, DispatchJobs, EnqueueStage
from shared.errors import InvalidDataset, TransientError
from shared.jobs.results import ValidationResult
from shared.jobs.run import JobRun
from shared.jobs.service import JobService
from shared.jobs.stages.runner import StageOutcome, run_stage
from shared.jobs.stages.shutdown import WorkerShuttingDown
from shared.pipeline.modeling import UnsupportedModelError
from shared.storage.errors import StoreUnavailable
from tests.support.job_rows import JobDatabase, job_database


@pytest.fixture
def db(tmp_path: Path, tiny_base_model: Path) -> JobDatabase:
    return job_database(tmp_path, tiny_base_model)


def validated(_: JobRun) -> StageOutcome:
    return StageOutcome(
        result=ValidationResult(rows={"train": 90, "validation": 10, "test": None}, labels=["a", "b"])
    )


def events(db: JobDatabase, job_id: uuid.UUID) -> list[JobEvent]:
    with db.session() as session:
        return JobService(session).jobs.list_events(job_id, after_id=0, limit=1000)


def test_a_stage_records_its_typed_result_and_the_next_stage_is_sent_after_the_commit(
    db: JobDatabase,
) -> None:
    job_id = db.submit()
    next_stage = run_stage(db.context, job_id, "validate", validated, task_id="task-1")

    assert next_stage == "train"
    job = db.job(job_id)
    assert job.status == "training" and job.attempt == 1
    assert job.completed_stages == ["validate"] and job.running_stage is None
    assert job.task_id == "task-1" and job.heartbeat_at is not None
    assert job.heartbeat_at.tzinfo is not None
    stored = JobRun(db.context, job_id, "train").result(ValidationResult)
    assert stored is not None and stored.rows["train"] == 90 and stored.labels == ["a", "b"]
    assert db.effects.effects == [EnqueueStage(job_id, "train", team_id=db.team_id)]
    # The runner of the effects saw the job already in `training`: they ran after the commit.
    assert "training" in db.effects.job_statuses_seen


def test_a_stage_run_again_after_its_worker_died_counts_an_attempt(db: JobDatabase) -> None:
    job_id = db.submit()
    run = JobRun(db.context, job_id, "validate")
    assert run.start("task-1") == "run"  # ... and the worker dies here
    # The broker gives the same task back (acks_late + reject_on_worker_lost).
    assert run_stage(db.context, job_id, "validate", validated, task_id="task-1") == "train"
    job = db.job(job_id)
    assert job.attempt == 2 and job.task_id == "task-1"
    assert any(event.message == "validate restarted (attempt 2)" for event in events(db, job_id))


def test_a_transient_error_goes_back_to_the_task_and_leaves_the_job_in_its_stage(db: JobDatabase) -> None:
    job_id = db.submit()

    def store_down(_: JobRun) -> StageOutcome:
        raise StoreUnavailable("s3://127.0.0.1:9/temper is unreachable")

    with pytest.raises(TransientError) as raised:
        run_stage(db.context, job_id, "validate", store_down)
    assert raised.value.code == "store_unavailable"
    job = db.job(job_id)
    assert job.status == "validating" and job.running_stage == "validate" and job.error_code is None
    assert db.effects.effects == []


def test_a_connection_error_from_a_library_is_classified_transient(db: JobDatabase) -> None:
    job_id = db.submit()

    def refused(_: JobRun) -> StageOutcome:
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(TransientError) as raised:
        run_stage(db.context, job_id, "validate", refused)
    assert raised.value.code == "connection_error"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidDataset("labels ['x'] are in the test dataset but not in the train rows"), "invalid_dataset"),
        (
            UnsupportedModelError("LoRA has no default target modules for model type 'mamba'"),
            "unsupported_model",
        ),
        (KeyError("logits"), "internal_error"),
    ],
)
def test_a_permanent_failure_is_recorded_with_its_code_and_nothing_is_sent(
    db: JobDatabase, error: Exception, code: str
) -> None:
    job_id = db.submit()

    def fails(_: JobRun) -> StageOutcome:
        raise error

    assert run_stage(db.context, job_id, "validate", fails) is None
    job = db.job(job_id)
    assert (job.status, job.error_code, job.error_stage) == ("failed", code, "validate")
    assert str(error).strip("'") in (job.error_message or "")
    assert job.running_stage is None and job.finished_at is not None
    # No stage is sent; the slot it held is handed on by a dispatch pass.
    assert db.effects.effects == [DispatchJobs()]


def test_a_job_cancelled_before_its_stage_starts_ends_cancelled_without_running_it(db: JobDatabase) -> None:
    job_id = db.submit()
    run_stage(db.context, job_id, "validate", validated)  # queued -> validating -> training
    with db.session() as session:
        JobService(session).request_cancel(db.team_id, job_id)
    calls: list[str] = []

    def body(_: JobRun) -> StageOutcome:
        calls.append("ran")
        return StageOutcome()

    assert run_stage(db.context, job_id, "train", body) is None
    assert calls == []
    assert db.job(job_id).status == "cancelled"


def test_a_duplicate_task_for_a_finished_stage_is_skipped(db: JobDatabase) -> None:
    job_id = db.submit()
    run_stage(db.context, job_id, "validate", validated)
    db.effects.effects.clear()
    assert run_stage(db.context, job_id, "validate", validated) is None
    job = db.job(job_id)
    assert job.status == "training" and job.attempt == 1 and job.completed_stages == ["validate"]
    assert db.effects.effects == []


def test_the_last_stage_succeeds_the_job_and_tells_its_study(db: JobDatabase) -> None:
    job_id = db.submit(evaluation=None)
    with db.session() as session:
        study = Study(team_id=db.team_id, base_spec={}, variants_spec={}, metric="accuracy", trial_budget=1)
        session.add(study)
        session.flush()
        study_id = study.id
        job = JobService(session).jobs.get(job_id)
        assert job is not None
        job.study_id = study_id
    run_stage(db.context, job_id, "validate", validated)
    db.effects.effects.clear()
    assert run_stage(db.context, job_id, "train", lambda run: StageOutcome()) is None
    job = db.job(job_id)
    assert job.status == "succeeded" and job.completed_stages == ["validate", "train"]
    assert db.effects.effects == [DispatchJobs(), AdvanceStudy(study_id)]


def test_a_running_stage_writes_heartbeats_while_its_body_works(db: JobDatabase) -> None:
    db.context.settings.heartbeat_interval = timedelta(seconds=0.1)
    job_id = db.submit()
    beats: list[object] = []

    def slow(run: JobRun) -> StageOutcome:
        for _ in range(3):
            time.sleep(0.25)
            beats.append(db.job(job_id).heartbeat_at)
        return validated(run)

    run_stage(db.context, job_id, "validate", slow, task_id="task-1")

    # A body that writes nothing itself still looks alive to the reaper.
    assert len(set(beats)) == 3


def test_a_stage_stopped_by_its_worker_s_shutdown_is_handed_back_not_failed(db: JobDatabase) -> None:
    job_id = db.submit()
    run_stage(db.context, job_id, "validate", validated, task_id="task-1")
    db.effects.effects.clear()

    def interrupted(_: JobRun) -> StageOutcome:
        raise WorkerShuttingDown("worker shutting down; train handed back at step 40", step=40)

    assert run_stage(db.context, job_id, "train", interrupted, task_id="task-2") is None

    job = db.job(job_id)
    assert job.status == "training" and job.error_code is None
    assert job.running_stage == "train" and job.task_id is None
    assert db.effects.effects == [EnqueueStage(job_id, "train", team_id=db.team_id)]
    assert "worker shutting down; train handed back at step 40" in [e.message for e in events(db, job_id)]
    # The re-sent task takes it over and counts a restart.
    run_stage(db.context, job_id, "train", lambda _: StageOutcome(), task_id="task-3")
    assert db.job(job_id).attempt == 2


def test_a_cancel_that_came_before_the_hand_back_ends_the_job_cancelled(db: JobDatabase) -> None:
    job_id = db.submit()
    run_stage(db.context, job_id, "validate", validated, task_id="task-1")
    db.effects.effects.clear()

    def cancelled_then_interrupted(_: JobRun) -> StageOutcome:
        with db.session() as session:
            JobService(session).request_cancel(db.team_id, job_id)
        raise WorkerShuttingDown("worker shutting down; train handed back at step 3", step=3)

    run_stage(db.context, job_id, "train", cancelled_then_interrupted, task_id="task-2")

    assert db.job(job_id).status == "cancelled"
    assert not any(isinstance(effect, EnqueueStage) for effect in db.effects.effects)


def test_a_run_whose_stage_another_task_took_over_records_nothing(db: JobDatabase) -> None:
    job_id = db.submit()
    run_stage(db.context, job_id, "validate", validated, task_id="task-1")
    db.effects.effects.clear()

    def outlived(run: JobRun) -> StageOutcome:
        # Meanwhile the reaper gave up on this worker, re-sent the stage, and a new task took it.
        with db.session() as session:
            job = JobService(session).jobs.get(job_id)
            assert job is not None
            job.task_id = "task-3"
        assert run.heartbeat() is False
        return StageOutcome()

    assert run_stage(db.context, job_id, "train", outlived, task_id="task-2") is None

    job = db.job(job_id)
    assert job.status == "training" and job.running_stage == "train" and job.task_id == "task-3"
    assert db.effects.effects == []
