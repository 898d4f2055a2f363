from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.db.models import Checkpoint, Job, JobEvent, JobMetricPoint
from shared.jobs.states import STAGE_ORDER, JobStatus


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, job_id: uuid.UUID, *, for_update: bool = False) -> Job | None:
        if for_update:
            return self.session.scalar(sa.select(Job).where(Job.id == job_id).with_for_update())
        return self.session.get(Job, job_id)

    def get_for_team(self, team_id: uuid.UUID, job_id: uuid.UUID, *, for_update: bool = False) -> Job | None:
        query = sa.select(Job).where(Job.id == job_id, Job.team_id == team_id)
        return self.session.scalar(query.with_for_update() if for_update else query)

    def get_by_idempotency_key(self, team_id: uuid.UUID, key: str) -> Job | None:
        return self.session.scalar(sa.select(Job).where(Job.team_id == team_id, Job.idempotency_key == key))

    def list_for_team(
        self,
        team_id: uuid.UUID,
        *,
        statuses: list[JobStatus] | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[sa.Row[Any]]:
        """A page of the team's jobs, newest first, as plain rows (read-only: the list is the API's
        busiest read, and building ORM objects for a page of them costs more than the query)."""
        query = sa.select(*Job.__table__.columns).where(Job.team_id == team_id)
        if statuses:
            query = query.where(Job.status.in_(statuses))
        if before is not None:
            created_at, job_id = before
            query = query.where(
                sa.or_(Job.created_at < created_at, sa.and_(Job.created_at == created_at, Job.id < job_id))
            )
        return list(self.session.execute(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)))

    # The reaper's queries: ids only; it locks and re-checks each job in its own transaction.

    def list_silent_stages(self, heartbeat_before: datetime) -> list[uuid.UUID]:
        """Jobs whose stage a worker took and stopped heartbeating for."""
        query = sa.select(Job.id).where(
            Job.status.in_(STAGE_ORDER),
            Job.running_stage.is_not(None),
            sa.or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < heartbeat_before),
        )
        return list(self.session.scalars(query.order_by(Job.heartbeat_at)))

    def list_untaken_stages(self, untouched_since: datetime) -> list[uuid.UUID]:
        """Jobs waiting in a stage that no worker took, unchanged since `untouched_since`."""
        # An admitted job still `queued` waits for its validate task; one not admitted waits for
        # the dispatcher, not for a worker.
        waiting_for_a_worker = sa.or_(
            Job.status.in_(STAGE_ORDER), sa.and_(Job.status == JobStatus.QUEUED, Job.admitted_at.is_not(None))
        )
        query = sa.select(Job.id).where(
            waiting_for_a_worker,
            Job.running_stage.is_(None),
            Job.updated_at < untouched_since,
        )
        return list(self.session.scalars(query.order_by(Job.updated_at)))

    def list_unanswered_cancels(self, requested_before: datetime) -> list[uuid.UUID]:
        query = sa.select(Job.id).where(
            Job.status == JobStatus.CANCELLING, Job.cancel_requested_at < requested_before
        )
        return list(self.session.scalars(query.order_by(Job.cancel_requested_at)))

    def add(self, job: Job) -> Job:
        self.session.add(job)
        self.session.flush()
        return job

    def add_with_event(self, job: Job, event: JobEvent) -> Job:
        """A new job and its first event, in one flush (the job's id must be set already)."""
        self.session.add_all([job, event])
        self.session.flush()
        return job

    def add_event(self, event: JobEvent) -> JobEvent:
        self.session.add(event)
        self.session.flush()
        return event

    def list_events(
        self, job_id: uuid.UUID, after_id: int, limit: int, event_type: str | None = None
    ) -> list[JobEvent]:
        query = sa.select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id)
        if event_type is not None:
            query = query.where(JobEvent.type == event_type)
        return list(self.session.scalars(query.order_by(JobEvent.id).limit(limit)))

    def add_metric_points(self, points: list[JobMetricPoint]) -> None:
        self.session.add_all(points)
        self.session.flush()

    def list_metric_points(self, job_id: uuid.UUID, names: list[str] | None = None) -> list[JobMetricPoint]:
        query = sa.select(JobMetricPoint).where(JobMetricPoint.job_id == job_id)
        if names:
            query = query.where(JobMetricPoint.name.in_(names))
        return list(self.session.scalars(query.order_by(JobMetricPoint.step, JobMetricPoint.id)))

    def get_checkpoint(self, job_id: uuid.UUID, step: int) -> Checkpoint | None:
        query = sa.select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.step == step)
        return self.session.scalar(query)

    def add_checkpoint(self, checkpoint: Checkpoint) -> Checkpoint:
        self.session.add(checkpoint)
        self.session.flush()
        return checkpoint

    def list_checkpoints(self, job_id: uuid.UUID) -> list[Checkpoint]:
        query = sa.select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step)
        return list(self.session.scalars(query))
