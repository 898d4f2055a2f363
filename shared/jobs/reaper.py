"""The reaper (a celery beat task): no job is left in a stage that nobody works on.

Three ways a job can be left behind, and what the reaper does about each:

- **A worker went silent mid-stage.** It took the stage (`running_stage` is set) and its heartbeat
  (written every `heartbeat_interval` while the stage body runs) is older than `heartbeat_timeout`:
  the worker died with its main process (so Celery's `task_reject_on_worker_lost` had nobody to
  give the task back), or lost the database for good. The stage is sent again; the run that picks it
  up resumes from the stage's own earlier output (training from its newest checkpoint).
- **No worker took the stage.** The job reached the stage (`running_stage` is empty) but nothing
  has changed for `stage_pickup_timeout`: the message was lost (a broker restart without
  persistence, a worker SIGKILLed between committing one stage and sending the next) or sits with a
  dead worker. The stage is sent again. A job the dispatcher admitted whose validate task never
  started counts too; one still waiting for admission is the dispatcher's (`shared.jobs.dispatch`).
- **A cancel nobody answered.** The job has been `cancelling` for longer than `cancel_grace`: the
  worker did not see the flag (stuck in a step, or gone). Its task is revoked with SIGKILL after the
  commit and the job ends `cancelled`.

A stage sent again more than `max_stage_attempts - 1` times fails the job with `worker_lost`
instead (`out_of_memory` when its runs were killed for memory, `shared.jobs.memory_watch`):
something about it kills workers, and retrying forever would hide that. The count is the one
`JobService.start_stage` keeps for redeliveries too.

Running twice is safe. A re-sent stage carries a new task id; `JobService.start_stage` lets it run
only if the job still waits for that stage, and skips it while another task holds the stage with a
fresh heartbeat. The reaper itself clears the old task id and resets the clock it judged by, so its
next tick waits a full timeout before acting on the same job again; each job is locked and checked
again in its own transaction, so a worker that answers at the last moment wins.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session, sessionmaker

from shared.db.base import utcnow
from shared.db.models import Job, JobEvent
from shared.db.outbox import EnqueueStage, RevokeTask, outbox
from shared.db.session import session_scope
from shared.jobs import memory_watch
from shared.jobs.repository import JobRepository
from shared.jobs.service import JobService
from shared.jobs.states import STAGE_NAMES, JobStatus
from shared.observability import REAPER_ACTIONS
from shared.settings import Settings

log = structlog.get_logger(__name__)

# The event type of the reaper's own notes on a job; counting them gives a stage's attempts.
REAPER_EVENT = "reaper"
WORKER_LOST = "worker_lost"


@dataclass(frozen=True)
class ReaperPolicy:
    heartbeat_timeout: timedelta
    stage_pickup_timeout: timedelta
    cancel_grace: timedelta
    max_stage_attempts: int

    @classmethod
    def of(cls, settings: Settings) -> ReaperPolicy:
        return cls(
            heartbeat_timeout=settings.heartbeat_timeout,
            stage_pickup_timeout=settings.stage_pickup_timeout,
            cancel_grace=settings.cancel_grace,
            max_stage_attempts=settings.max_stage_attempts,
        )


@dataclass
class ReaperReport:
    """What one tick did, by job id (the beat task logs it; tests read it)."""

    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    cancelled: list[uuid.UUID] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {
            name: [str(job_id) for job_id in ids]
            for name, ids in (
                ("requeued", self.requeued),
                ("failed", self.failed),
                ("cancelled", self.cancelled),
            )
        }


def reap(
    session_factory: sessionmaker[Session], policy: ReaperPolicy, now: datetime | None = None
) -> ReaperReport:
    """One tick of the reaper. `now` is for tests; the beat task leaves it to the clock."""
    now = now or utcnow()
    reaper = _Reaper(session_factory, policy, now)
    with session_scope(session_factory) as session:
        jobs = JobRepository(session)
        silent = jobs.list_silent_stages(now - policy.heartbeat_timeout)
        untaken = jobs.list_untaken_stages(now - policy.stage_pickup_timeout)
        cancels = jobs.list_unanswered_cancels(now - policy.cancel_grace)
    for job_id in cancels:
        reaper.one(job_id, reaper.enforce_cancel)
    for job_id in silent:
        reaper.one(job_id, reaper.take_back_silent_stage)
    for job_id in untaken:
        reaper.one(job_id, reaper.resend_untaken_stage)
    return reaper.report


@dataclass
class _Reaper:
    session_factory: sessionmaker[Session]
    policy: ReaperPolicy
    now: datetime
    report: ReaperReport = field(default_factory=ReaperReport)

    def one(self, job_id: uuid.UUID, action: Callable[[Session, JobService, Job], None]) -> None:
        """Lock the job, check again and act, in its own transaction: one bad job stops no other."""
        try:
            with self._locked(job_id) as (session, service, job):
                if job is not None:
                    action(session, service, job)
        except Exception as exc:  # the next tick is the retry
            log.error(
                "reaper could not handle a job", job_id=str(job_id), error=f"{type(exc).__name__}: {exc}"
            )

    def enforce_cancel(self, session: Session, service: JobService, job: Job) -> None:
        requested = job.cancel_requested_at
        if JobStatus(job.status) != JobStatus.CANCELLING or requested is None:
            return
        waited = (self.now - requested).total_seconds()
        if waited < self.policy.cancel_grace.total_seconds():
            return
        # Between two stages no task holds the job, and there is nothing to revoke.
        running_task = job.task_id if job.running_stage is not None else None
        if running_task:
            outbox(session).add(RevokeTask(running_task))
        ended = "task revoked and job cancelled" if running_task else "job cancelled"
        message = f"no worker answered the cancel within {waited:.0f} s; {ended}"
        service.transition(job, JobStatus.CANCELLED, message=message, data={"reaper": "cancel"})
        REAPER_ACTIONS.labels(action="cancel").inc()
        self.report.cancelled.append(job.id)

    def take_back_silent_stage(self, session: Session, service: JobService, job: Job) -> None:
        stage = job.running_stage
        if stage is None or STAGE_NAMES.get(JobStatus(job.status)) != stage:
            return
        since = job.heartbeat_at or job.updated_at
        silent_s = (self.now - since).total_seconds()
        if silent_s < self.policy.heartbeat_timeout.total_seconds():
            return
        self._send_again(session, service, job, stage, f"no heartbeat from worker for {silent_s:.0f} s")

    def resend_untaken_stage(self, session: Session, service: JobService, job: Job) -> None:
        status = JobStatus(job.status)
        admitted_not_started = status == JobStatus.QUEUED and job.admitted_at is not None
        stage = "validate" if admitted_not_started else STAGE_NAMES.get(status)
        if stage is None or job.running_stage is not None:
            return
        idle_s = (self.now - job.updated_at).total_seconds()
        if idle_s < self.policy.stage_pickup_timeout.total_seconds():
            return
        self._send_again(session, service, job, stage, f"no worker took {stage} for {idle_s:.0f} s")

    def _send_again(self, session: Session, service: JobService, job: Job, stage: str, why: str) -> None:
        # The first run, each earlier re-send, and this one; for a stage a run had taken, at least
        # the runs `JobService.start_stage` counted as failed (its redeliveries included) plus this
        # one: one count, however the stage came back, so that neither path loops past the cap.
        attempt = self._times_sent_again(service, job.id, stage) + 2
        if job.running_stage == stage:
            attempt = max(attempt, service.failed_runs(job) + 1)
        cap = self.policy.max_stage_attempts
        if attempt > cap:
            code, detail = memory_watch.gave_up_message(
                stage, attempt - 1, job.memory_watch, job.peak_memory_bytes, service.oom_kills_seen(job)
            )
            message = f"{why}; {stage} gave up after {cap} attempts ({detail})"
            service.fail_stage(job, stage, code, message)
            REAPER_ACTIONS.labels(action="fail").inc()
            self.report.failed.append(job.id)
            log.warning("reaper failed a job", job_id=str(job.id), stage=stage, reason=message)
            return
        message = f"{why}; re-enqueued (attempt {attempt} of {cap})"
        service.jobs.add_event(
            _reaper_event(job.id, message, {"reaper": "requeue", "stage": stage, "attempt": attempt})
        )
        # The old task is no longer the stage's owner, and the clocks the reaper judges by
        # (`heartbeat_at`, and `updated_at` with it) restart: the next tick gives the new task a
        # full timeout to start before judging it.
        job.task_id = None
        job.heartbeat_at = self.now
        outbox(session).add(EnqueueStage(job.id, stage, team_id=job.team_id))
        REAPER_ACTIONS.labels(action="requeue").inc()
        self.report.requeued.append(job.id)
        log.warning("reaper re-enqueued a stage", job_id=str(job.id), stage=stage, reason=message)

    @staticmethod
    def _times_sent_again(service: JobService, job_id: uuid.UUID, stage: str) -> int:
        events = service.jobs.list_events(job_id, after_id=0, limit=1000, event_type=REAPER_EVENT)
        return sum(
            1
            for event in events
            if event.data.get("reaper") == "requeue" and event.data.get("stage") == stage
        )

    @contextmanager
    def _locked(self, job_id: uuid.UUID) -> Iterator[tuple[Session, JobService, Job | None]]:
        with session_scope(self.session_factory) as session:
            service = JobService(session)
            yield session, service, service.jobs.get(job_id, for_update=True)


def _reaper_event(job_id: uuid.UUID, message: str, data: dict[str, object]) -> JobEvent:
    return JobEvent(job_id=job_id, type=REAPER_EVENT, message=message, data=data)
