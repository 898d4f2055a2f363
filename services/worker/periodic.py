"""Periodic tasks and celery beat's schedule: `celery -A services.worker.app beat`.

Periodic tasks are not retried: each is idempotent and the next tick is its retry.
"""

from __future__ import annotations

from typing import Any

import structlog

from services.worker.app import celery_app, settings, stage_context
from shared.errors import TransientError
from shared.queue import DISPATCH_TASK, REAPER_TASK, TASK_QUEUES, TRITON_RECONCILE_TASK

log = structlog.get_logger(__name__)


@celery_app.task(name=TRITON_RECONCILE_TASK, queue=TASK_QUEUES[TRITON_RECONCILE_TASK], ignore_result=True)
def reconcile_triton_task() -> dict[str, Any]:
    """Load the registry's production versions that a (re)started Triton is not serving."""
    from shared.registry.reconcile import reconcile_triton
    from shared.serving.triton_control import TritonControl

    context = stage_context()
    if not context.settings.triton_url or context.model_repository is None:
        return {"skipped": "no Triton configured"}
    control = TritonControl(context.settings.triton_url, timeout_s=30.0)
    try:
        return reconcile_triton(context.session_factory, control, context.model_repository).as_dict()
    except TransientError as error:
        log.warning("triton.unreachable", error=str(error))
        return {"skipped": str(error)}
    finally:
        control.close()


@celery_app.task(name=DISPATCH_TASK, queue=TASK_QUEUES[DISPATCH_TASK], ignore_result=True)
def dispatch_task() -> dict[str, Any]:
    """A dispatch pass on the clock: passes after commits do the work; this one admits what they
    missed (an effect that failed, a GPU-hours period that rolled over)."""
    from shared.jobs.dispatch import DispatchPolicy, dispatch_in

    admitted = dispatch_in(stage_context().session_factory, DispatchPolicy.from_settings(settings))
    return {"admitted": [str(job_id) for job_id in admitted]}


@celery_app.task(name=REAPER_TASK, queue=TASK_QUEUES[REAPER_TASK], ignore_result=True)
def reap_jobs_task() -> dict[str, Any]:
    """The reaper (a celery beat task): re-send or fail stages whose worker is gone, enforce
    unanswered cancels (`shared.jobs.reaper`)."""
    from shared.jobs.reaper import ReaperPolicy, reap

    report = reap(stage_context().session_factory, ReaperPolicy.of(settings))
    if report.requeued or report.failed or report.cancelled:
        log.warning("reaper acted", **report.as_dict())
    return report.as_dict()


_interval = settings.triton_reconcile_interval.total_seconds()
_dispatch_interval = settings.dispatch_interval.total_seconds()
_reaper_interval = settings.reaper_interval.total_seconds()
celery_app.conf.beat_schedule = {
    **(celery_app.conf.beat_schedule or {}),
    # A run that waited longer than one interval is dropped: the next one does the same work.
    "triton-reconcile": {
        "task": TRITON_RECONCILE_TASK,
        "schedule": _interval,
        "options": {"queue": TASK_QUEUES[TRITON_RECONCILE_TASK], "expires": _interval},
    },
    "dispatch": {
        "task": DISPATCH_TASK,
        "schedule": _dispatch_interval,
        "options": {"queue": TASK_QUEUES[DISPATCH_TASK], "expires": _dispatch_interval},
    },
    "reaper": {
        "task": REAPER_TASK,
        "schedule": _reaper_interval,
        "options": {"queue": TASK_QUEUES[REAPER_TASK], "expires": _reaper_interval},
    },
}
celery_app.conf.beat_schedule_filename = str(settings.data_root / "celerybeat-schedule")
