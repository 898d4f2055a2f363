"""The Celery application: one per process, configured from settings, and how tasks are sent.

Tasks are registered by `services.worker.tasks`; the API only sends tasks by name, so it needs the
configuration here and none of the task code (or torch). Tasks are sent by the outbox's effects
after the commit that made them necessary (`shared.effects`), never in the middle of a transaction.
"""

from __future__ import annotations

import time
import uuid

import structlog
from celery import Celery
from kombu import Queue

from shared import embedded_broker
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
REAPER_TASK = "jobs.reap"
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
    REAPER_TASK: "default",
}

# How long Redis keeps a taken, unacknowledged message invisible before it hands it to another
# worker. Chosen together with the reaper (a celery beat task, `shared.jobs.reaper`):
# - Recovering lost work is the reaper's job, not the broker's: it re-sends a stage within
#   `heartbeat_timeout` (5 min) of its worker going silent, long before this redelivers anything.
# - Redelivery is for a message whose worker vanished; a redelivered message is the same task, so
#   `JobService.start_stage` treats it as a restart. A stage still running when the timeout passes
#   would run twice, so the timeout must be longer than any stage normally runs.
# - A task sent with a countdown sits taken but unacknowledged in a worker until it is due; a
#   countdown longer than this would be delivered again meanwhile. The longest is a webhook retry
#   (`webhook_retry_backoff_max`, 1 h); a stage's transient retry waits at most a minute.
# So: a day. Keep it above the longest stage and the longest countdown if either grows.
REDIS_VISIBILITY_TIMEOUT_S = 24 * 3600


def create_celery_app(settings: Settings) -> Celery:
    embedded_broker.register()
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
    if settings.resolved_broker_url.startswith(embedded_broker.TRANSPORT_NAME + "+"):
        # The embedded default (`shared.embedded_broker`): its SQLite file sits beside the database.
        settings.embedded_broker_path.parent.mkdir(parents=True, exist_ok=True)
        app.conf.broker_transport_options = embedded_broker.transport_options()
    elif settings.resolved_broker_url.startswith("filesystem://"):
        # kombu's filesystem transport, only where a deployment names it: it writes each message in
        # place, and a worker can read a half-written one (see `shared.embedded_broker`).
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
        options: dict[str, object] = {"visibility_timeout": REDIS_VISIBILITY_TIMEOUT_S}
        if settings.broker_key_prefix:
            options["global_keyprefix"] = settings.broker_key_prefix
        app.conf.broker_transport_options = options
    return app


# Log context that travels from the sender into the task in its headers, so that a job's log lines
# carry the API request that started it (and each stage passes it on to the next).
REQUEST_ID_HEADER = "temper_request_id"
TEAM_ID_HEADER = "temper_team_id"


def send_stage(
    app: Celery,
    stage: str,
    job_id: str,
    countdown: float | None = None,
    team_id: str | None = None,
    request_id: str | None = None,
) -> str:
    """Send a stage's task; the request id bound in the sender's log context goes along (or
    `request_id`, from a sender that works for another request: the dispatcher's thread)."""
    task_name = STAGE_TASKS[stage]
    headers: dict[str, object] = {"temper_sent_at": time.time()}
    request_id = structlog.contextvars.get_contextvars().get("request_id") or request_id
    if request_id:
        headers[REQUEST_ID_HEADER] = str(request_id)
    if team_id:
        headers[TEAM_ID_HEADER] = team_id
    result = app.send_task(
        task_name,
        args=[job_id],
        queue=TASK_QUEUES[task_name],
        countdown=countdown,
        headers=headers,
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
