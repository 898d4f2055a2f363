from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api.openapi import text_answer
from services.api.schemas import HealthStatus, ReadyStatus

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthStatus, operation_id="health_live")
def healthz() -> dict:
    """The process is up. Says nothing about its dependencies (that is /readyz)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyStatus,
    operation_id="health_ready",
    responses={503: {"model": ReadyStatus, "description": "Not ready: a failed check says why"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: the database, the broker and the object store answer."""
    state = request.app.state
    checks = await asyncio.gather(
        asyncio.to_thread(_check_database, state.engine),
        asyncio.to_thread(_check_broker, state.celery),
        asyncio.to_thread(_check_store, state.store),
    )
    results = dict(zip(("database", "broker", "object_store"), checks, strict=True))
    ready = all(result["ok"] for result in results.values())
    # Unauthenticated, and a driver's error may quote a URL with its password: masked (shared.redaction).
    checks = state.redactor.value(results)
    return JSONResponse(status_code=200 if ready else 503, content={"ready": ready, "checks": checks})


@router.get(
    "/metrics",
    operation_id="health_metrics",
    response_class=PlainTextResponse,
    responses=text_answer("text/plain", "Prometheus metrics in the text exposition format"),
)
def metrics() -> Response:
    """Prometheus metrics of this API process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _check_database(engine) -> dict:
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _check_broker(celery) -> dict:
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _check_store(store) -> dict:
    try:
        store.ping()
        return {"ok": True, "store": store.description}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
