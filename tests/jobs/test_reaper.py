"""The reaper on its own, against SQLite and Postgres: what it does to a job whose worker went
silent, to a stage nobody took, to a cancel nobody answered, and what it leaves alone.

Time passes by handing `reap` a later `now` instead of sleeping.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from shared.db.base import utcnow
from shared.db.models import JobEvent
from shared.db.outbox import DispatchJobs, EnqueueStage, RevokeTask
from shared.jobs.reaper import ReaperPolicy, reap
from shared.jobs.service import JobService
from tests.support.job_rows import JobDatabase, job_database

pytestmark = pytest.mark.timeout(60)

POLICY = ReaperPolicy(
    heartbeat_timeout=timedelta(minutes=5),
    stage_pickup_timeout=timedelta(minutes=30),
    cancel_grace=timedelta(seconds=60),
    max_stage_attempts=3,
)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path, tiny_base_model: Path) -> Iterator[JobDatabase]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    database = job_database(tmp_path, tiny_base_model, database_url)
    yield database
    database.session_factory.kw["bind"].dispose()


def training(db: JobDatabase, task_id: str | None = "task-train-1") -> uuid.UUID:
    """A job past validation; with a `task_id`, a worker has taken its train stage."""
    job_id = db.submit(evaluation=None)
    with db.session() as session:
        service = JobService(session)
        job = service.jobs.get(job_id)
        assert job is not None
        service.start_stage(job, "validate", "task-validate")
        service.complete_stage(job, "validate", None, cancelled=False)
        if task_id is not None:
            service.start_stage(job, "train", task_id)
    db.effects.effects.clear()
    return job_id


def messages(db: JobDatabase, job_id: uuid.UUID) -> list[str]:
    with db.session() as session:
        events = session.query(JobEvent).filter(JobEvent.job_id == job_id).order_by(JobEvent.id).all()
        return [event.message or "" for event in events]


def test_a_silent_worker_s_stage_is_sent_again_once_per_timeout(db: JobDatabase) -> None:
    job_id = training(db)
    later = utcnow() + timedelta(minutes=6)

    report = reap(db.session_factory, POLICY, now=later)

    assert report.requeued == [job_id]
    assert db.effects.effects == [EnqueueStage(job_id, "train", team_id=db.team_id)]
    job = db.job(job_id)
    assert job.status == "training" and job.running_stage == "train" and job.task_id is None
    assert any(
        message.startswith("no heartbeat from worker for ")
        and message.endswith("s; re-enqueued (attempt 2 of 3)")
        for message in messages(db, job_id)
    )
    # The next tick gives the re-sent task a full timeout to start.
    assert reap(db.session_factory, POLICY, now=later + timedelta(seconds=30)).requeued == []


def test_the_re_sent_task_runs_and_a_late_duplicate_of_it_skips(db: JobDatabase) -> None:
    job_id = training(db)
    reap(db.session_factory, POLICY, now=utcnow() + timedelta(minutes=6))
    with db.session() as session:
        service = JobService(session)
        job = service.jobs.get(job_id)
        assert job is not None
        assert service.start_stage(job, "train", "task-train-2", POLICY.heartbeat_timeout) == "run"
        # The first message turns up after all while the new task holds the stage: a duplicate.
        assert service.start_stage(job, "train", "task-train-1", POLICY.heartbeat_timeout) == "skip"
        # The broker handing the same task back (its worker died) is a restart, not a duplicate.
        assert service.start_stage(job, "train", "task-train-2", POLICY.heartbeat_timeout) == "run"
    assert db.job(job_id).task_id == "task-train-2"


def test_a_stage_that_keeps_losing_its_worker_fails_the_job_with_worker_lost(db: JobDatabase) -> None:
    job_id = training(db)
    now = utcnow()
    for attempt in (2, 3):
        now += timedelta(minutes=6)
        assert reap(db.session_factory, POLICY, now=now).requeued == [job_id], attempt
    now += timedelta(minutes=6)

    report = reap(db.session_factory, POLICY, now=now)

    assert report.failed == [job_id]
    job = db.job(job_id)
    assert job.status == "failed" and job.error_code == "worker_lost" and job.error_stage == "train"
    assert job.error_message is not None and "gave up after 3 attempts" in job.error_message
    assert job.running_stage is None


def test_a_stage_no_worker_took_is_sent_again_after_the_pickup_timeout(db: JobDatabase) -> None:
    job_id = training(db, task_id=None)  # validate committed; the train message never arrived

    assert reap(db.session_factory, POLICY, now=utcnow() + timedelta(minutes=10)).requeued == []
    report = reap(db.session_factory, POLICY, now=utcnow() + timedelta(minutes=31))

    assert report.requeued == [job_id]
    assert db.effects.effects == [EnqueueStage(job_id, "train", team_id=db.team_id)]
    assert any("no worker took train for" in message for message in messages(db, job_id))


def test_an_admitted_job_whose_validate_never_started_is_sent_again(db: JobDatabase) -> None:
    job_id = db.submit()  # admitted; its validate message was lost
    db.effects.effects.clear()

    assert reap(db.session_factory, POLICY, now=utcnow() + timedelta(minutes=10)).requeued == []
    report = reap(db.session_factory, POLICY, now=utcnow() + timedelta(minutes=31))

    assert report.requeued == [job_id]
    assert db.effects.effects == [EnqueueStage(job_id, "validate", team_id=db.team_id)]


def test_a_healthy_stage_and_a_queued_job_are_left_alone(db: JobDatabase) -> None:
    running = training(db)
    queued = db.submit()
    later = utcnow() + timedelta(minutes=40)
    with db.session() as session:
        job = session.get(type(db.job(running)), running)
        assert job is not None
        job.heartbeat_at = later - timedelta(seconds=20)
        waiting = session.get(type(db.job(queued)), queued)
        assert waiting is not None
        waiting.admitted_at = None  # waiting for the dispatcher: not the reaper's to send

    report = reap(db.session_factory, POLICY, now=later)

    assert report.requeued == report.failed == report.cancelled == []
    assert db.job(running).task_id == "task-train-1"
    assert db.job(queued).status == "queued"


def test_a_cancel_no_worker_answers_is_revoked_and_ends_cancelled(db: JobDatabase) -> None:
    job_id = training(db)
    with db.session() as session:
        JobService(session).request_cancel(db.team_id, job_id)
    db.effects.effects.clear()

    assert reap(db.session_factory, POLICY, now=utcnow() + timedelta(seconds=30)).cancelled == []
    report = reap(db.session_factory, POLICY, now=utcnow() + timedelta(seconds=90))

    assert report.cancelled == [job_id]
    # The revoke, and a dispatch pass for the slot the job held.
    assert db.effects.effects == [RevokeTask("task-train-1"), DispatchJobs()]
    job = db.job(job_id)
    assert job.status == "cancelled" and job.running_stage is None
    assert any("no worker answered the cancel within" in message for message in messages(db, job_id))
