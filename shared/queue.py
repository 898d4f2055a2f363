"""The Celery application: one per process, configured from settings, and how tasks are sent.

Tasks are registered by `services.worker.tasks`; the API only sends tasks by name, so it needs the
configuration here and none of the task code (or torch). Tasks are sent by the outbox's effects
after the commit that made them necessary (`shared.effects`), never in the middle of a transaction.
"""

from __future__ import annotations

import time
import uuid

from celery import Celery
from kombu import Queue

from shared.settings import Settings

QUEUES = ("default", "train", "evaluate", "export")

# Stage -> task name. Names are explicit and dotted so that renaming a function moves nothing.
STAGE_TASKS: dict[str, str] = {
    "validate": "jobs.validate",
    "train": "jobs.train",
    "evaluate": "jobs.evaluate",
    "export": "jobs.export",
    "publish": "jobs.publish",
}
STUDY_ADVANCE_TASK = "studies.advance"
# One attempt to deliver one webhook event; it schedules the next attempt itself.
WEBHOOK_DELIVER_TASK = "webhooks.deliver"
# Periodic (celery beat) tasks: idempotent, not retried; the next tick is the retry.
TRITON_RECONCILE_TASK = "triton.reconcile"
DISPATCH_TASK = "jobs.dispatch"
# Task name -> queue.
TASK_QUEUES: dict[str, str] = {
    "jobs.validate": "default",
    "jobs.train": "train",
    "jobs.evaluate": "evaluate",
    "jobs.export": "export",
    "jobs.publish": "default",
    STUDY_ADVANCE_TASK: "default",
    WEBHOOK_DELIVER_TASK: "default",
    TRITON_RECONCILE_TASK: "default",
    DISPATCH_TASK: "default",
}


def create_celery_app(settings: Settings) -> Celery:
    app = Celery("temper", broker=settings.resolved_broker_url, set_as_current=False)
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="default",
        task_routes={name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
        # A stage is long and must survive a killed worker: ack only after it ran, hand it back
        # to the queue when the worker process dies, and take one task at a time.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    if settings.resolved_broker_url.startswith("filesystem://"):
        folder = settings.broker_directory / "queue"
        processed = settings.broker_directory / "processed"
        folder.mkdir(parents=True, exist_ok=True)
        processed.mkdir(parents=True, exist_ok=True)
        app.conf.broker_transport_options = {
            # One folder for both directions: producers and the worker share this machine.
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(processed),
            # Broadcast (remote control) messages; kombu defaults to ./control in the working directory.
            "control_folder": str(settings.broker_directory / "control"),
            "store_processed": False,
        }
    elif settings.resolved_broker_url.startswith("redis"):
        # A training stage can run for hours; the message must stay invisible to others that long.
        options: dict[str, object] = {"visibility_timeout": 24 * 3600}
        if settings.broker_key_prefix:
            options["global_keyprefix"] = settings.broker_key_prefix
        app.conf.broker_transport_options = options
    return app


def send_stage(app: Celery, stage: str, job_id: str, countdown: float | None = None) -> str:
    task_name = STAGE_TASKS[stage]
    result = app.send_task(
        task_name,
        args=[job_id],
        queue=TASK_QUEUES[task_name],
        countdown=countdown,
        headers={"temper_sent_at": time.time()},
    )
    return str(result.id)


def send_study_advance(app: Celery, study_id: uuid.UUID) -> None:
    app.send_task(STUDY_ADVANCE_TASK, args=[str(study_id)], queue=TASK_QUEUES[STUDY_ADVANCE_TASK])


def send_webhook_delivery(app: Celery, delivery_id: uuid.UUID, countdown: float | None = None) -> None:
    app.send_task(
        WEBHOOK_DELIVER_TASK,
        args=[str(delivery_id)],
        queue=TASK_QUEUES[WEBHOOK_DELIVER_TASK],
        countdown=countdown,
    )
