"""Running one stage of a job safely, whatever happened before.

A stage task may run twice (a worker died mid-task and the broker handed it back), may find the
job cancelled, or may find its work already done. `run_stage` sorts that out before and after
the stage body, so each body only does its own work and can assume it owns the job.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from shared.errors import StageError, TemperError, TransientError
from shared.jobs.service import JobService
from shared.jobs.spec import JobSpec
from shared.jobs.stages.context import StageContext
from shared.jobs.states import STAGE_NAMES, STAGE_ORDER, TERMINAL, JobStatus
from shared.observability import STAGE_DURATION

log = structlog.get_logger(__name__)

STAGE_STATUS = {name: status for status, name in STAGE_NAMES.items()}


@dataclass
class StageOutcome:
    """What a stage body returns: results to merge into `job.result`, and whether it was cancelled."""

    result: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False


@dataclass(frozen=True)
class StageRun:
    """What the caller (the Celery task) must do after the stage: send the next one, or nothing."""

    next_stage: str | None
    ran: bool


def planned_stages(spec: JobSpec) -> list[str]:
    stages = ["validate", "train"]
    stages.extend(extra for extra in ("evaluate", "export", "publish") if spec.wants_stage(extra))
    return stages


def run_stage(
    ctx: StageContext, job_id: uuid.UUID, stage: str, body: Callable[[StageContext, uuid.UUID], StageOutcome]
) -> StageRun:
    status = STAGE_STATUS[stage]
    bound = log.bind(job_id=str(job_id), stage=stage)
    if not _begin(ctx, job_id, stage, status, bound):
        return StageRun(next_stage=None, ran=False)

    started = time.monotonic()
    try:
        outcome = body(ctx, job_id)
    except TransientError:
        STAGE_DURATION.labels(stage=stage, outcome="retry").observe(time.monotonic() - started)
        raise
    except StageError as exc:
        STAGE_DURATION.labels(stage=stage, outcome="failed").observe(time.monotonic() - started)
        bound.warning("stage failed", code=exc.code, message=exc.message)
        _fail(ctx, job_id, exc.code, exc.message, stage)
        return StageRun(next_stage=None, ran=True)
    except TemperError as exc:
        STAGE_DURATION.labels(stage=stage, outcome="failed").observe(time.monotonic() - started)
        _fail(ctx, job_id, exc.code, exc.message, stage)
        return StageRun(next_stage=None, ran=True)
    except Exception as exc:
        # A bug: record it on the job so nobody waits forever, and let it reach the worker's log.
        STAGE_DURATION.labels(stage=stage, outcome="error").observe(time.monotonic() - started)
        _fail(ctx, job_id, "internal_error", f"{type(exc).__name__}: {exc}", stage)
        raise
    STAGE_DURATION.labels(stage=stage, outcome="cancelled" if outcome.cancelled else "ok").observe(
        time.monotonic() - started
    )
    return _finish(ctx, job_id, stage, status, outcome, bound)


def _begin(ctx: StageContext, job_id: uuid.UUID, stage: str, status: JobStatus, bound: Any) -> bool:
    with ctx.session_factory.begin() as session:
        service = JobService(session)
        job = service.jobs.get(job_id, for_update=True)
        if job is None:
            bound.warning("job vanished; skipping stage")
            return False
        current = JobStatus(job.status)
        if current in TERMINAL:
            bound.info("job already finished; skipping stage", status=current.value)
            return False
        if current == JobStatus.CANCELLING:
            service.transition(job, JobStatus.CANCELLED, message=f"cancelled before {stage} started")
            return False
        if current == status:
            if job.result.get("running_stage") == stage:
                # The same stage again: its earlier run died. It resumes from what it left behind.
                job.attempt += 1
                service.log(job, f"{stage} restarted (attempt {job.attempt})", data={"attempt": job.attempt})
            job.result = {**job.result, "running_stage": stage}
            return True
        if stage == "validate" and current == JobStatus.QUEUED:
            job.attempt = max(job.attempt, 1)
            service.transition(job, status, message="validation started")
            job.result = {**job.result, "running_stage": stage}
            return True
        if STAGE_ORDER.index(current) > STAGE_ORDER.index(status) if current in STAGE_ORDER else False:
            bound.info("stage already done; skipping", status=current.value)
            return False
        bound.warning("job is not ready for this stage; skipping", status=current.value)
        return False


def _finish(
    ctx: StageContext, job_id: uuid.UUID, stage: str, status: JobStatus, outcome: StageOutcome, bound: Any
) -> StageRun:
    with ctx.session_factory.begin() as session:
        service = JobService(session)
        job = service.jobs.get(job_id, for_update=True)
        assert job is not None
        completed = [*job.result.get("completed_stages", []), stage]
        job.result = {**job.result, **outcome.result, "completed_stages": completed, "running_stage": None}
        current = JobStatus(job.status)
        if outcome.cancelled or current == JobStatus.CANCELLING:
            if current != JobStatus.CANCELLING:
                service.transition(job, JobStatus.CANCELLING, message="stopped by cancel")
            service.transition(job, JobStatus.CANCELLED, message=f"cancelled during {stage}")
            return StageRun(next_stage=None, ran=True)
        if current != status:
            bound.warning("job moved on while the stage ran", status=current.value)
            return StageRun(next_stage=None, ran=True)
        stages = planned_stages(JobSpec.model_validate(job.spec))
        position = stages.index(stage)
        if position + 1 < len(stages):
            next_stage = stages[position + 1]
            service.transition(job, STAGE_STATUS[next_stage], message=f"{stage} done")
            return StageRun(next_stage=next_stage, ran=True)
        service.transition(job, JobStatus.SUCCEEDED, message=f"{stage} done; job succeeded")
        return StageRun(next_stage=None, ran=True)


def _fail(ctx: StageContext, job_id: uuid.UUID, code: str, message: str, stage: str) -> None:
    with ctx.session_factory.begin() as session:
        service = JobService(session)
        job = service.jobs.get(job_id, for_update=True)
        if job is None or JobStatus(job.status) in TERMINAL:
            return
        job.result = {**job.result, "running_stage": None}
        if JobStatus(job.status) == JobStatus.CANCELLING:
            service.transition(job, JobStatus.CANCELLED, message=f"cancelled; {stage} had failed: {message}")
            return
        service.fail(job, code, message, stage)
