"""The dispatcher: admission by free slots, team quotas (concurrency, GPU-hours), turns across teams
and pauses, on SQLite and Postgres; passes racing from several processes never overfill the slots."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from shared.db.base import utcnow
from shared.db.models import BaseModelEntry, Job, JobEvent, Team
from shared.db.outbox import EnqueueStage
from shared.jobs.dispatch import Dispatcher, DispatchPolicy, dispatch_in
from shared.jobs.service import JobService
from shared.jobs.states import JobStatus
from tests.support.job_rows import JobDatabase, job_database


def policy(slots: int = 2, max_concurrent_jobs: int = 4, gpu_hours: float | None = None) -> DispatchPolicy:
    return DispatchPolicy(
        slots=slots,
        max_concurrent_jobs=max_concurrent_jobs,
        gpu_hours_per_period=gpu_hours,
        period=timedelta(days=30),
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def db(request: pytest.FixtureRequest, tmp_path: Path, tiny_base_model: Path) -> Iterator[JobDatabase]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    database = job_database(tmp_path, tiny_base_model, database_url=url)
    yield database
    database.session_factory.kw["bind"].dispose()


def new_team(db: JobDatabase, name: str, **quotas: object) -> uuid.UUID:
    with db.session() as session:
        team = Team(name=f"{name}-{uuid.uuid4().hex[:6]}", **quotas)
        session.add(team)
        session.flush()
        return team.id


def queue_jobs(db: JobDatabase, team_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    """Queued, not yet admitted jobs, as a submit leaves them (one transaction each, in order)."""
    ids = []
    for _ in range(count):
        with db.session() as session:
            job = Job(
                team_id=team_id,
                base_model_id=_base_model_id(db),
                train_dataset_id=db.dataset_id,
                status=JobStatus.QUEUED,
                spec={},
                progress={},
                latest_metrics={},
                result={},
                completed_stages=[],
            )
            session.add(job)
            session.flush()
            ids.append(job.id)
    return ids


def _base_model_id(db: JobDatabase) -> uuid.UUID:
    with db.session() as session:
        entry = session.scalar(sa.select(BaseModelEntry).where(BaseModelEntry.name == db.base_model))
        assert entry is not None
        return entry.id


def run_pass(db: JobDatabase, dispatch: DispatchPolicy) -> list[uuid.UUID]:
    with db.session() as session:
        return Dispatcher(session, dispatch).run_pass()


def finish(db: JobDatabase, job_id: uuid.UUID) -> None:
    """The job ends the way a worker ends it: through the state machine, which frees its slot."""
    with db.session() as session:
        service = JobService(session)
        job = service.jobs.get(job_id, for_update=True)
        assert job is not None
        service.transition(job, JobStatus.VALIDATING)
        service.fail(job, "test", "ended by the test", "validate")


def team_of(db: JobDatabase, job_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    with db.session() as session:
        return [session.get(Job, job_id).team_id for job_id in job_ids]  # type: ignore[union-attr]


def test_admission_sends_validate_after_commit_and_records_an_event(db: JobDatabase) -> None:
    team = new_team(db, "a")
    [job_id] = queue_jobs(db, team, 1)
    db.effects.effects.clear()
    assert run_pass(db, policy()) == [job_id]
    assert db.effects.effects == [EnqueueStage(job_id, "validate", team_id=team)]
    job = db.job(job_id)
    assert job.admitted_at is not None and job.status == JobStatus.QUEUED
    with db.session() as session:
        events = session.query(JobEvent).filter_by(job_id=job_id, type="admitted").all()
    assert len(events) == 1 and events[0].message.startswith("admitted after")


def test_two_flooding_teams_take_turns_and_a_third_teams_job_takes_the_next_slot(db: JobDatabase) -> None:
    flood_a, flood_b, single = new_team(db, "a"), new_team(db, "b"), new_team(db, "c")
    a_jobs = queue_jobs(db, flood_a, 6)
    b_jobs = queue_jobs(db, flood_b, 6)
    dispatch = policy(slots=2)
    first = run_pass(db, dispatch)
    # Not first come first served (a's six jobs came first): one slot each.
    assert team_of(db, first) == [flood_a, flood_b]

    [c_job] = queue_jobs(db, single, 1)
    with db.session() as session:
        position = Dispatcher(session, dispatch).position(session.get(Job, c_job))  # type: ignore[arg-type]
    assert position is not None and (position.position, position.reason) == (1, "no_free_worker")

    finish(db, first[0])  # one slot frees: the third team's job is the very next one admitted
    assert run_pass(db, dispatch) == [c_job]

    # And the floods alternate as slots free.
    order = []
    for _ in range(6):
        running = [job_id for job_id in a_jobs + b_jobs + [c_job] if _running(db, job_id)]
        finish(db, running[0])
        order.extend(team_of(db, run_pass(db, dispatch)))
    assert order.count(flood_a) == 3 and order.count(flood_b) == 3
    assert all(left != right for left, right in itertools.pairwise(order))


def _running(db: JobDatabase, job_id: uuid.UUID) -> bool:
    job = db.job(job_id)
    return job.admitted_at is not None and job.finished_at is None


def test_a_team_at_its_concurrency_limit_waits_and_others_go_ahead(db: JobDatabase) -> None:
    limited, other = new_team(db, "limited", max_concurrent_jobs=1), new_team(db, "other")
    limited_jobs = queue_jobs(db, limited, 3)
    other_jobs = queue_jobs(db, other, 2)
    admitted = run_pass(db, policy(slots=4))
    assert set(admitted) == {limited_jobs[0], *other_jobs}
    with db.session() as session:
        dispatcher = Dispatcher(session, policy(slots=4))
        positions = [dispatcher.position(session.get(Job, job_id)) for job_id in limited_jobs]  # type: ignore[arg-type]
    assert positions[0] is not None and positions[0].reason == "starting"
    assert [(p.position, p.reason) for p in positions[1:] if p] == [
        (1, "team_concurrency"),
        (2, "team_concurrency"),
    ]
    assert "limit is 1" in positions[1].message  # type: ignore[union-attr]

    finish(db, limited_jobs[0])
    assert run_pass(db, policy(slots=4)) == [limited_jobs[1]]


def test_gpu_hours_spent_in_the_period_hold_a_team_back(db: JobDatabase) -> None:
    team = new_team(db, "thrifty", gpu_hours_per_period=2.0)
    spent, old, waiting = queue_jobs(db, team, 3)
    now = utcnow()
    with db.session() as session:
        for job_id, finished_days_ago, hours in ((spent, 1, 1.5), (old, 40, 10.0)):
            job = session.get(Job, job_id)
            assert job is not None
            job.status = JobStatus.SUCCEEDED
            job.admitted_at = now - timedelta(days=finished_days_ago, hours=hours)
            job.finished_at = now - timedelta(days=finished_days_ago)
            job.worker_seconds = hours * 3600
    # 1.5 h in the last 30 days (the 10 h job is older): under the quota of 2, so it may run.
    assert run_pass(db, policy()) == [waiting]
    with db.session() as session:
        job = session.get(Job, waiting)
        assert job is not None
        job.admitted_at = now - timedelta(hours=1)  # it has run for an hour: 2.5 h now
        usage = Dispatcher(session, policy()).team_usage(team)
    assert usage.gpu_hours_used == pytest.approx(2.5, abs=0.01)
    assert usage.blocked is not None and usage.blocked[0] == "gpu_hours"
    [next_job] = queue_jobs(db, team, 1)
    assert run_pass(db, policy()) == []
    with db.session() as session:
        position = Dispatcher(session, policy()).position(session.get(Job, next_job))  # type: ignore[arg-type]
    assert position is not None and position.reason == "gpu_hours" and "2.50 of its 2" in position.message


def test_a_paused_queue_accepts_and_holds_jobs_until_resumed(db: JobDatabase) -> None:
    team = new_team(db, "a")
    with db.session() as session:
        Dispatcher(session, policy()).set_paused(True, "driver upgrade")
    [job_id] = queue_jobs(db, team, 1)
    assert run_pass(db, policy()) == []
    with db.session() as session:
        position = Dispatcher(session, policy()).position(session.get(Job, job_id))  # type: ignore[arg-type]
    assert position is not None and position.reason == "paused" and "driver upgrade" in position.message
    with db.session() as session:
        Dispatcher(session, policy()).set_paused(False)
    assert run_pass(db, policy()) == [job_id]


def test_a_stage_task_for_a_job_not_yet_admitted_is_skipped(db: JobDatabase) -> None:
    team = new_team(db, "a")
    [job_id] = queue_jobs(db, team, 1)
    with db.session() as session:
        service = JobService(session)
        job = service.jobs.get(job_id, for_update=True)
        assert job is not None
        assert service.start_stage(job, "validate", "task-1") == "skip"
    assert db.job(job_id).status == JobStatus.QUEUED


def test_cancelling_an_admitted_job_frees_its_slot_and_counts_its_time(db: JobDatabase) -> None:
    team = new_team(db, "a")
    first, second = queue_jobs(db, team, 2)
    assert run_pass(db, policy(slots=1)) == [first]
    with db.session() as session:
        JobService(session).request_cancel(team, first)
    job = db.job(first)
    assert job.status == JobStatus.CANCELLED and job.worker_seconds is not None and job.worker_seconds >= 0
    assert run_pass(db, policy(slots=1)) == [second]


@pytest.mark.services
def test_racing_passes_never_overfill_the_slots(
    postgres_url: str, tmp_path: Path, tiny_base_model: Path
) -> None:
    db = job_database(tmp_path, tiny_base_model, database_url=postgres_url)
    teams = [new_team(db, f"t{index}") for index in range(4)]
    for team in teams:
        queue_jobs(db, team, 5)
    admitted: list[uuid.UUID] = []
    barrier = threading.Barrier(8)

    def racer() -> None:
        barrier.wait()
        admitted.extend(dispatch_in(db.session_factory, policy(slots=3)))

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(admitted) == 3 and len(set(admitted)) == 3
    assert len(set(team_of(db, admitted))) == 3  # three different teams got the three slots
    db.session_factory.kw["bind"].dispose()
