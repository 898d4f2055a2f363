"""The worker process: `celery -A services.worker.app worker -Q default,train,evaluate,export`.

Engines and clients are created once per worker process (after the fork), never at import.
"""

from __future__ import annotations

import functools
from typing import Any

from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutting_down,
)

from shared import embedded_broker
from shared.jobs.stages import shutdown
from shared.jobs.stages.context import StageContext
from shared.observability import configure_logging
from shared.queue import create_celery_app
from shared.settings import get_settings
from shared.webhooks.delivery import WebhookSender

settings = get_settings()
configure_logging(json_output=settings.log_json, level=settings.log_level, secrets=settings.secret_values())
celery_app = create_celery_app(settings)
app = celery_app  # the name `celery -A services.worker.app` looks for

_state: dict[str, Any] = {}


def stage_context() -> StageContext:
    """The per-process StageContext, built on first use (a solo pool never forks)."""
    from shared.db.session import create_db_engine, create_session_factory
    from shared.effects import ProcessEffects
    from shared.jobs.dispatch import DispatchPolicy, dispatch_in
    from shared.storage.factory import open_configured_stores

    if "context" not in _state:
        engine = create_db_engine(settings.resolved_database_url)
        store, model_repository = open_configured_stores(settings)
        effects = ProcessEffects(
            celery=celery_app, store=store, model_repository=model_repository, triton_url=settings.triton_url
        )
        session_factory = create_session_factory(engine, effects)
        effects.dispatch = functools.partial(
            dispatch_in, session_factory, DispatchPolicy.from_settings(settings)
        )
        _state["engine"] = engine
        _state["context"] = StageContext(
            settings=settings,
            session_factory=session_factory,
            store=store,
            model_repository=model_repository,
        )
    context: StageContext = _state["context"]
    return context


def webhook_sender() -> WebhookSender:
    """The per-process HTTP client that delivers webhooks, built on first use."""
    if "webhook_sender" not in _state:
        _state["webhook_sender"] = WebhookSender(timeout_s=settings.webhook_timeout.total_seconds())
    sender: WebhookSender = _state["webhook_sender"]
    return sender


@worker_init.connect
def _prepare_shutdown_flag(**_: object) -> None:
    # Before the pool forks, so that every pool process shares the flag (`shared.jobs.stages.shutdown`).
    shutdown.prepare()


@worker_init.connect
def _adopt_old_broker_messages(**_: object) -> None:
    # A `var/` from before the SQLite broker may hold messages in the old filesystem broker's folder.
    embedded_broker.adopt_filesystem_broker(settings, celery_app)


@worker_ready.connect
def _advertise_worker(sender: Any = None, **_: object) -> None:
    """The main process records the worker in the `workers` table and keeps it fresh from a thread
    (`shared.workers.registration`): what submit and the dry run judge a job's memory against."""
    from shared.db.session import create_db_engine, create_session_factory
    from shared.workers.registration import Advertiser, WorkerIdentity

    controller = getattr(sender, "controller", None)
    identity = WorkerIdentity(
        name=str(getattr(sender, "hostname", None) or celery_app.conf.get("worker_name") or "worker"),
        queues=sorted(celery_app.amqp.queues.consume_from or celery_app.amqp.queues),
        concurrency=int(getattr(controller, "concurrency", 1) or 1),
    )
    engine = create_db_engine(settings.resolved_database_url)
    advertiser = Advertiser(create_session_factory(engine), identity, settings.worker_advertise_interval)
    _state["advertiser"] = advertiser
    advertiser.start()


@worker_shutting_down.connect
def _stop_running_stages(**_: object) -> None:
    """Warm shutdown (SIGTERM): a running training stage saves a checkpoint and hands its job back."""
    shutdown.request()
    advertiser = _state.get("advertiser")
    if advertiser is not None:
        advertiser.stop()


@worker_process_init.connect
def _init_process(**_: object) -> None:
    _state.clear()


@worker_process_shutdown.connect
def _close_process(**_: object) -> None:
    engine = _state.pop("engine", None)
    if engine is not None:
        engine.dispose()
    sender = _state.pop("webhook_sender", None)
    if sender is not None:
        sender.close()


# Registers the tasks, beat's schedule and the metrics endpoint on `celery_app`.
from services.worker import metrics, periodic, tasks  # noqa: E402, F401
