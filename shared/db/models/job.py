from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, BigIntId, Timestamps, UUIDPrimaryKey, utcnow


class JobStatus(enum.StrEnum):
    """The states of DESIGN.md's job lifecycle; which moves are allowed is `shared.jobs.states`."""

    QUEUED = "queued"
    VALIDATING = "validating"
    TRAINING = "training"
    EVALUATING = "evaluating"
    EXPORTING = "exporting"
    PUBLISHING = "publishing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


JOB_STATUS_TYPE = sa.Enum(
    JobStatus,
    name="job_status",
    native_enum=False,
    create_constraint=True,
    length=20,
    values_callable=lambda statuses: [status.value for status in statuses],
)


class Job(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.UniqueConstraint("team_id", "idempotency_key", name="uq_jobs_team_idempotency"),
        # A team's jobs newest first (the list and its cursor), and what a team spent in a period.
        sa.Index("ix_jobs_team_created", "team_id", "created_at", "id"),
        sa.Index("ix_jobs_team_finished", "team_id", "finished_at"),
        # The dispatcher's scan: jobs waiting for admission, oldest first.
        sa.Index("ix_jobs_status_created", "status", "created_at"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("teams.id", ondelete="CASCADE"))
    base_model_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("base_models.id"))
    train_dataset_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("datasets.id"), index=True)
    validation_dataset_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("datasets.id"))
    test_dataset_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("datasets.id"))
    # The study this job runs a variant of; it is told when the job finishes.
    study_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("studies.id", ondelete="SET NULL"), index=True
    )

    name: Mapped[str | None] = mapped_column(sa.String(200))
    status: Mapped[JobStatus] = mapped_column(JOB_STATUS_TYPE, default=JobStatus.QUEUED)
    attempt: Mapped[int] = mapped_column(sa.Integer(), default=0)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200))
    # The spec as it ran, with every default filled in.
    spec: Mapped[dict[str, Any]] = mapped_column()
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    latest_metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Each finished stage's typed result under its name (`shared.jobs.results`).
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cancel_requested_at: Mapped[datetime | None] = mapped_column()

    # The stage runner's bookkeeping: which stage a worker holds now, which are done, the Celery task
    # running it and when that worker last said it was alive.
    running_stage: Mapped[str | None] = mapped_column(sa.String(20))
    completed_stages: Mapped[list[Any]] = mapped_column(default=list)
    task_id: Mapped[str | None] = mapped_column(sa.String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column()

    error_code: Mapped[str | None] = mapped_column(sa.String(100))
    error_message: Mapped[str | None] = mapped_column(sa.Text())
    error_stage: Mapped[str | None] = mapped_column(sa.String(50))

    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()

    # The dispatcher's bookkeeping (`shared.jobs.dispatch`): when the job got a worker slot (a
    # queued job without it waits for its turn), and how long it held one, set when it finishes:
    # what the team's GPU-hours quota counts.
    admitted_at: Mapped[datetime | None] = mapped_column()
    worker_seconds: Mapped[float | None] = mapped_column(sa.Float())
    # The API request that submitted the job: the dispatcher, which admits it later on a thread of
    # its own, sends it with the first task so that the job's log lines carry the request.
    request_id: Mapped[str | None] = mapped_column(sa.String(100))

    # Memory (`shared.jobs.memory_watch`): the largest a stage process of this job was seen to use
    # (its resident set's high-water mark), and what the running
    # stage's watch knows: where it runs, its limit, the cgroup's OOM-kill count when it started,
    # the stage's own estimate. Read when a stage comes back after its worker process died.
    peak_memory_bytes: Mapped[int | None] = mapped_column(sa.BigInteger())
    memory_watch: Mapped[dict[str, Any] | None] = mapped_column()


class JobEvent(Base):
    """One thing that happened to a job: a transition, a progress report, a checkpoint, a log line."""

    __tablename__ = "job_events"
    # A job's events in order from a cursor: the events page and the SSE stream.
    __table_args__ = (sa.Index("ix_job_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(sa.String(30))
    from_status: Mapped[str | None] = mapped_column(sa.String(20))
    to_status: Mapped[str | None] = mapped_column(sa.String(20))
    message: Mapped[str | None] = mapped_column(sa.Text())
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=sa.text("CURRENT_TIMESTAMP"), default=utcnow)


class JobMetricPoint(Base):
    __tablename__ = "job_metric_points"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    value: Mapped[float] = mapped_column(sa.Float())
    step: Mapped[int] = mapped_column(sa.Integer())
    epoch: Mapped[float | None] = mapped_column(sa.Float())
    created_at: Mapped[datetime] = mapped_column(server_default=sa.text("CURRENT_TIMESTAMP"), default=utcnow)


class Checkpoint(UUIDPrimaryKey, Base):
    __tablename__ = "checkpoints"
    __table_args__ = (sa.UniqueConstraint("job_id", "step", name="uq_checkpoints_job_step"),)

    job_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(sa.Integer())
    epoch: Mapped[float | None] = mapped_column(sa.Float())
    object_prefix: Mapped[str] = mapped_column(sa.String(500))
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger())
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=sa.text("CURRENT_TIMESTAMP"), default=utcnow)
