"""The worker process: `celery -A services.worker.app worker -Q default,train,evaluate,export`.

Engines and clients are created once per worker process (after the fork), never at import.
"""

from __future__ import annotations

from celery.signals import worker_process_init, worker_process_shutdown

from shared.observability import configure_logging
from shared.queue import create_celery_app
from shared.settings import get_settings

settings = get_settings()
configure_logging(json_output=settings.log_json, level=settings.log_level)
celery_app = create_celery_app(settings)
app = celery_app  # the name `celery -A services.worker.app` looks for

_state: dict[str, object] = {}


def stage_context():  # type: ignore[no-untyped-def]
    """The per-process StageContext, built on first use (a solo pool never forks)."""
    from shared.db.session import create_db_engine, create_session_factory
    from shared.jobs.stages.context import StageContext
    from shared.storage.factory import open_object_store

    if "context" not in _state:
        engine = create_db_engine(settings.resolved_database_url)
        store = open_object_store(
            settings.resolved_object_store_url,
            access_key=_secret(settings.object_store_access_key),
            secret_key=_secret(settings.object_store_secret_key),
            region=settings.object_store_region,
        )
        model_repository = open_object_store(
            settings.resolved_model_repository_url,
            access_key=_secret(settings.object_store_access_key),
            secret_key=_secret(settings.object_store_secret_key),
            region=settings.object_store_region,
        )
        _state["engine"] = engine
        _state["context"] = StageContext(
            settings=settings,
            session_factory=create_session_factory(engine),
            store=store,
            model_repository=model_repository,
        )
    return _state["context"]


def _secret(value) -> str | None:  # type: ignore[no-untyped-def]
    return value.get_secret_value() if value is not None else None


@worker_process_init.connect
def _init_process(**_: object) -> None:
    _state.clear()


@worker_process_shutdown.connect
def _close_process(**_: object) -> None:
    engine = _state.pop("engine", None)
    if engine is not None:
        engine.dispose()  # type: ignore[attr-defined]


# Registers the tasks on `celery_app`.
import services.worker.tasks  # noqa: E402, F401
