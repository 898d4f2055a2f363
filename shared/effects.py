"""What the outbox's effects do, in a process that has a broker, an object store and maybe Triton.

One runner per process (API lifespan, worker boot), handed to the session factory. Effects run
after the commit that registered them; a failure here cannot undo that commit, so it is logged and
counted rather than raised, and the reconcilers repair it: the reaper re-sends a stage whose job
waits with no task, Triton's reconcile loads the production versions it lacks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from celery import Celery

from shared.db.outbox import (
    AdvanceStudy,
    DeleteObject,
    DeliverWebhook,
    DispatchJobs,
    Effect,
    EnqueueStage,
    LoadModelVersion,
    RevokeTask,
)
from shared.observability import EFFECT_FAILURES
from shared.queue import send_stage, send_study_advance, send_webhook_delivery
from shared.registry.triton import load_published_version
from shared.storage.base import ObjectStore

log = structlog.get_logger(__name__)


@dataclass
class ProcessEffects:
    """The `EffectRunner` of an API or worker process."""

    celery: Celery
    store: ObjectStore
    model_repository: ObjectStore | None = None
    triton_url: str | None = None
    # Runs one dispatch pass in its own transaction, or waits for one, before returning; set once
    # the process's session factory exists (a worker: `shared.jobs.dispatch.dispatch_in`; an API
    # process: its `DispatchLoop.request_and_wait`). Without it, celery beat's tick dispatches.
    dispatch: Callable[[], object] | None = None
    # Asks for a pass without waiting for it (`DispatchJobs(wait=False)`); unset, `dispatch` runs.
    dispatch_soon: Callable[[], object] | None = None

    def run(self, effects: Sequence[Effect]) -> None:
        for effect in effects:
            try:
                self._run_one(effect)
            except Exception as exc:
                EFFECT_FAILURES.labels(effect=type(effect).__name__).inc()
                log.error(
                    "effect failed after commit", effect=repr(effect), error=f"{type(exc).__name__}: {exc}"
                )

    def _run_one(self, effect: Effect) -> None:
        match effect:
            case DispatchJobs(wait=False) if self.dispatch_soon is not None:
                self.dispatch_soon()
            case DispatchJobs():
                if self.dispatch is not None:
                    self.dispatch()
            case EnqueueStage(job_id=job_id, stage=stage, team_id=team_id, request_id=request_id):
                send_stage(
                    self.celery,
                    stage,
                    str(job_id),
                    team_id=str(team_id) if team_id else None,
                    request_id=request_id,
                )
            case AdvanceStudy(study_id=study_id):
                send_study_advance(self.celery, study_id)
            case DeleteObject(key=key):
                self.store.delete(key)  # idempotent: a key already gone is fine
            case LoadModelVersion(repository_name=name, version=version, formats=formats):
                if self.triton_url and self.model_repository is not None:
                    load_published_version(
                        self.triton_url, self.model_repository, name, version, list(formats)
                    )
            case RevokeTask(task_id=task_id, terminate=terminate):
                # SIGKILL, not SIGTERM: the worker did not answer the cancel, so nothing in it is
                # trusted to stop cleanly, and a pool process takes SIGTERM for a warm shutdown.
                self.celery.control.revoke(task_id, terminate=terminate, signal="SIGKILL")
            case DeliverWebhook(delivery_id=delivery_id, countdown=countdown):
                send_webhook_delivery(self.celery, delivery_id, countdown)
