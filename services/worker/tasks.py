"""Celery tasks: thin wrappers that run one pipeline stage of a job (or advance a study).

Every task goes through `temper_task`: an explicit dotted name, its queue, `acks_late`, and
retries only for errors classified as transient (`shared.failures.classify_failure`), with
exponential backoff up to a cap. When the cap is reached the job fails with
`transient_exhausted`, naming the cause: no job waits in a stage for a task that gave up.
Tasks take ids, reload rows, check the state first, and are safe to run twice
(`shared.jobs.stages.runner`). The next stage is sent by the outbox after the commit that moved
the job on.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from celery import Task
from celery.exceptions import Reject

from services.worker.app import celery_app, settings, stage_context, webhook_sender
from shared.errors import TransientError
from shared.failures import classify_failure
from shared.jobs.run import JobRun
from shared.jobs.stages import shutdown
from shared.jobs.stages.bodies import stage_body
from shared.jobs.stages.runner import run_stage
from shared.observability import QUEUE_WAIT, STAGE_RETRIES
from shared.queue import (
    REQUEST_ID_HEADER,
    STAGE_TASKS,
    STUDY_ADVANCE_TASK,
    TASK_QUEUES,
    TEAM_ID_HEADER,
    WEBHOOK_DELIVER_TASK,
)
from shared.webhooks.delivery import DeliveryPolicy, deliver
from shared.webhooks.secret_box import SecretBox

log = structlog.get_logger(__name__)


def retry_countdown(retries: int) -> float:
    """Seconds before retry number `retries + 1`: doubling from the base, capped."""
    base = settings.transient_retry_backoff.total_seconds()
    return float(min(settings.transient_retry_backoff_max.total_seconds(), base * 2**retries))


def temper_task(name: str) -> Callable[[Callable[..., None]], Task]:
    def decorator(function: Callable[..., None]) -> Task:
        @functools.wraps(function)
        def with_transient_retries(task: Task, *args: Any) -> None:
            try:
                function(task, *args)
            except Exception as exc:
                failure = classify_failure(exc)
                if not isinstance(failure, TransientError):
                    raise
                retries = task.request.retries
                if retries >= settings.transient_retry_limit:
                    _give_up(name, args, failure, retries)
                    return
                countdown = retry_countdown(retries)
                _note_retry(name, args, failure, retries, countdown)
                raise task.retry(
                    exc=failure, countdown=countdown, max_retries=settings.transient_retry_limit
                ) from exc

        registered: Task = celery_app.task(
            name=name, queue=TASK_QUEUES[name], bind=True, acks_late=True, reject_on_worker_lost=True
        )(with_transient_retries)
        return registered

    return decorator


def _stage_of(task_name: str) -> str | None:
    return next((stage for stage, name in STAGE_TASKS.items() if name == task_name), None)


def _note_retry(
    name: str, args: tuple[Any, ...], failure: TransientError, retries: int, countdown: float
) -> None:
    stage = _stage_of(name)
    STAGE_RETRIES.labels(stage=stage or name, code=failure.code).inc()
    log.warning(
        "transient error; retrying", task=name, code=failure.code, error=failure.message, retry=retries + 1
    )
    if stage is None:
        return
    try:
        JobRun(stage_context(), uuid.UUID(args[0]), stage).log(
            f"{stage} hit a transient error ({failure.code}); retry {retries + 1} of "
            f"{settings.transient_retry_limit} in {countdown:.1f} s",
            data={
                "retry": retries + 1,
                "code": failure.code,
                "error": failure.message,
                "countdown_s": countdown,
            },
        )
    except Exception as exc:  # the database may be what is out of reach; the retry goes on regardless
        log.warning("could not record the retry on the job", error=f"{type(exc).__name__}: {exc}")


def _give_up(name: str, args: tuple[Any, ...], failure: TransientError, retries: int) -> None:
    stage = _stage_of(name)
    log.error("transient error; retries exhausted", task=name, code=failure.code, error=failure.message)
    if stage is None:
        return
    # If this write fails too (the database itself is out of reach), the exception reaches Celery
    # and the reaper finds the job by its stale heartbeat.
    JobRun(stage_context(), uuid.UUID(args[0]), stage).fail(
        "transient_exhausted",
        f"{stage} gave up after {retries} retries: {failure.code}: {failure.message}",
    )


def _header(task: Task, name: str) -> Any:
    """A header the sender set: Celery puts custom headers on the request itself as well as (in some
    versions and transports) under `request.headers`."""
    return (task.request.headers or {}).get(name) or getattr(task.request, name, None)


def _run(task: Task, stage: str, job_id: str) -> None:
    if shutdown.requested():
        # This worker is going away but (on some transports) still takes messages until it has
        # exited: leave the job untouched and the message for a worker that stays.
        raise Reject("worker shutting down", requeue=True)
    sent_at = _header(task, "temper_sent_at")
    if sent_at and not task.request.retries:
        QUEUE_WAIT.labels(stage=stage).observe(max(0.0, time.time() - float(sent_at)))
    # The sender's request and team, when it named them, so that this stage's log lines (and the
    # next stage's, sent from here) carry the request that started the job.
    trace = {
        key: value
        for key, header in (("request_id", REQUEST_ID_HEADER), ("team_id", TEAM_ID_HEADER))
        if (value := _header(task, header))
    }
    structlog.contextvars.bind_contextvars(job_id=job_id, stage=stage, task_id=task.request.id, **trace)
    try:
        log.info("stage task started")
        run_stage(
            stage_context(),
            uuid.UUID(job_id),
            stage,
            stage_body(stage),
            task_id=task.request.id,
            retries=int(task.request.retries or 0),
        )
    finally:
        structlog.contextvars.unbind_contextvars("job_id", "stage", "task_id", *trace)


@temper_task("jobs.validate")
def validate_job(self: Task, job_id: str) -> None:
    _run(self, "validate", job_id)


@temper_task("jobs.train")
def train_job(self: Task, job_id: str) -> None:
    _run(self, "train", job_id)


@temper_task("jobs.evaluate")
def evaluate_job(self: Task, job_id: str) -> None:
    _run(self, "evaluate", job_id)


@temper_task("jobs.export")
def export_job(self: Task, job_id: str) -> None:
    _run(self, "export", job_id)


@temper_task("jobs.publish")
def publish_job(self: Task, job_id: str) -> None:
    _run(self, "publish", job_id)


@temper_task(STUDY_ADVANCE_TASK)
def advance_study_task(self: Task, study_id: str) -> None:
    from shared.studies.service import advance_study

    advance_study(
        stage_context().session_factory,
        uuid.UUID(study_id),
        gpu_workers=settings.gpu_workers,
    )


@temper_task(WEBHOOK_DELIVER_TASK)
def deliver_webhook_task(self: Task, delivery_id: str) -> None:
    """One attempt of a webhook delivery; it records itself and schedules the next attempt."""
    policy = DeliveryPolicy(
        timeout_s=settings.webhook_timeout.total_seconds(),
        max_attempts=settings.webhook_max_attempts,
        backoff_s=settings.webhook_retry_backoff.total_seconds(),
        backoff_max_s=settings.webhook_retry_backoff_max.total_seconds(),
    )
    secrets = SecretBox.from_settings(settings)
    deliver(stage_context().session_factory, webhook_sender(), uuid.UUID(delivery_id), policy, secrets)
