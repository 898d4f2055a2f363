"""Celery tasks: thin wrappers that run one pipeline stage of a job and send the next.

Every task goes through `temper_task`: an explicit dotted name, its queue, `acks_late`, and
retries only for errors classified as transient, with a cap. Tasks take ids, reload rows, check
the state first, and are safe to run twice (see `shared.jobs.stages.runner`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from services.worker.app import celery_app, stage_context
from shared.errors import TransientError
from shared.observability import QUEUE_WAIT
from shared.queue import TASK_QUEUES, notify_study, send_stage
from shared.storage.errors import StoreUnavailable

log = structlog.get_logger(__name__)

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (TransientError, StoreUnavailable, ConnectionError)
MAX_RETRIES = 3


def temper_task(name: str) -> Callable[[Callable[..., Any]], Any]:
    def decorator(function: Callable[..., Any]) -> Any:
        return celery_app.task(
            name=name,
            queue=TASK_QUEUES[name],
            bind=True,
            acks_late=True,
            reject_on_worker_lost=True,
            autoretry_for=TRANSIENT_ERRORS,
            max_retries=MAX_RETRIES,
            retry_backoff=True,
            retry_backoff_max=300,
            retry_jitter=True,
        )(function)

    return decorator


def _run(task: Any, stage: str, job_id: str) -> None:
    from shared.jobs.stages.runner import run_stage

    sent_at = (task.request.headers or {}).get("temper_sent_at") if task.request.headers else None
    if sent_at:
        QUEUE_WAIT.labels(stage=stage).observe(max(0.0, time.time() - float(sent_at)))
    structlog.contextvars.bind_contextvars(job_id=job_id, stage=stage, task_id=task.request.id)
    try:
        outcome = run_stage(stage_context(), uuid.UUID(job_id), stage, _body(stage))
        if outcome.next_stage is not None:
            # The transition to the next stage is committed by now: enqueue after commit.
            send_stage(celery_app, outcome.next_stage, job_id)
        else:
            notify_study(celery_app, stage_context().session_factory, uuid.UUID(job_id))
    finally:
        structlog.contextvars.unbind_contextvars("job_id", "stage", "task_id")


def _body(stage: str) -> Callable[..., Any]:
    if stage == "validate":
        from shared.jobs.stages.validate import run_validate

        return run_validate
    if stage == "train":
        from shared.jobs.stages.train import run_train

        return run_train
    if stage == "evaluate":
        from shared.jobs.stages.evaluate import run_evaluate

        return run_evaluate
    if stage == "export":
        from shared.jobs.stages.export import run_export

        return run_export
    if stage == "publish":
        from shared.jobs.stages.publish import run_publish

        return run_publish
    raise ValueError(f"no stage body for {stage!r}")


@temper_task("jobs.validate")
def validate_job(self: Any, job_id: str) -> None:
    _run(self, "validate", job_id)


@temper_task("jobs.train")
def train_job(self: Any, job_id: str) -> None:
    _run(self, "train", job_id)


@temper_task("jobs.evaluate")
def evaluate_job(self: Any, job_id: str) -> None:
    _run(self, "evaluate", job_id)


@temper_task("jobs.export")
def export_job(self: Any, job_id: str) -> None:
    _run(self, "export", job_id)


@temper_task("jobs.publish")
def publish_job(self: Any, job_id: str) -> None:
    _run(self, "publish", job_id)


@temper_task("studies.advance")
def advance_study_task(self: Any, study_id: str) -> None:
    from shared.studies.service import advance_study

    advance_study(
        stage_context().session_factory,
        celery_app,
        uuid.UUID(study_id),
        default_job_limit=stage_context().settings.max_concurrent_jobs_per_team,
    )
