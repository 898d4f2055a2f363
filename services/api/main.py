"""The control plane: FastAPI app factory. Run with `temper up` or `uvicorn services.api.main:create_app --factory`."""

from __future__ import annotations

import gc
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
import structlog
from fastapi import Depends, FastAPI
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.deps import refuse_control_characters
from services.api.errors import install_error_handlers
from services.api.openapi import install_openapi
from services.api.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from services.api.routes import (
    admin,
    audit,
    datasets,
    generate,
    health,
    jobs,
    models,
    queue,
    studies,
    webhooks,
)
from services.api.routes.models import LocalRunners
from shared.db.session import create_db_engine, create_session_factory
from shared.effects import ProcessEffects
from shared.errors import Conflict
from shared.jobs.dispatch import DispatchPolicy
from shared.jobs.dispatch_loop import process_dispatch_loop
from shared.observability import HTTP_LATENCY, HTTP_REQUESTS, configure_logging
from shared.queue import create_celery_app
from shared.redaction import Redactor
from shared.serving.local_generation import LocalGenerationRunners
from shared.settings import Settings, get_settings
from shared.storage.factory import open_configured_stores
from shared.teams.service import TeamService

log = structlog.get_logger(__name__)


# A caller's x-request-id is kept when it looks like one: it goes into log lines, an answer header
# and audit rows (a column of 100 characters), so anything longer or stranger gets a fresh id.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def _request_id(sent: str | None) -> str:
    return sent if sent is not None and _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex


def _rate_limiter(settings: Settings) -> tuple[RateLimiter, redis.Redis | None]:
    """Counts in Redis when the deployment has it (shared by every API process), else in-process."""
    if settings.broker_url and settings.broker_url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(settings.broker_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        return RedisRateLimiter(client, settings.broker_key_prefix or "temper:"), client
    return MemoryRateLimiter(), None


class ObserveRequests:
    """Every HTTP request gets a request id (the caller's `x-request-id` when well-formed), bound to
    its log lines and echoed in the answer, and is counted and timed per route.

    A plain ASGI middleware: Starlette's `@app.middleware("http")` runs each request through a
    task group and memory streams, which cost more than the routes themselves on the hot reads.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((value for name, value in scope["headers"] if name == b"x-request-id"), None)
        request_id = _request_id(sent.decode("latin-1") if sent is not None else None)
        scope.setdefault("state", {})["request_id"] = request_id  # request.state.request_id
        status = 500  # unless an answer starts: an exception that escaped every handler

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            route_path = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], route_path, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], route_path).observe(time.perf_counter() - started)


def _install_bootstrap_admin(session_factory: sessionmaker[Session], settings: Settings) -> None:
    """Install the bootstrap admin key. Replicas that start together race to create its team and
    key; the one that loses (a unique violation, or the team appearing between its two looks)
    finds them on its next try instead of failing its start-up."""
    assert settings.bootstrap_admin_key is not None
    for attempt in range(1, 4):
        try:
            with session_factory.begin() as session:
                TeamService(session, settings.api_key_pepper.get_secret_value()).ensure_bootstrap_admin(
                    settings.bootstrap_admin_key.get_secret_value()
                )
            return
        except (IntegrityError, Conflict):
            if attempt == 3:
                raise


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(
            json_output=settings.log_json, level=settings.log_level, secrets=settings.secret_values()
        )
        engine = create_db_engine(settings.resolved_database_url)
        app.state.settings = settings
        app.state.redactor = Redactor(settings.secret_values())
        app.state.engine = engine
        app.state.store, app.state.model_repository = open_configured_stores(settings)
        app.state.celery = create_celery_app(settings)
        effects = ProcessEffects(
            celery=app.state.celery,
            store=app.state.store,
            model_repository=app.state.model_repository,
            triton_url=settings.triton_url,
        )
        app.state.session_factory = create_session_factory(engine, effects)
        policy = DispatchPolicy.from_settings(settings)
        # One thread runs this process's dispatch passes, one pass for every commit made meanwhile.
        app.state.dispatch_loop = process_dispatch_loop(app.state.session_factory, policy).start()
        effects.dispatch = app.state.dispatch_loop.request_and_wait
        effects.dispatch_soon = app.state.dispatch_loop.request
        app.state.rate_limiter, redis_client = _rate_limiter(settings)
        app.state.local_runners = LocalRunners(settings.work_dir / "serving")
        app.state.generation_runners = LocalGenerationRunners(settings.work_dir / "serving")
        if settings.bootstrap_admin_key is not None:
            _install_bootstrap_admin(app.state.session_factory, settings)
        # Everything built so far (modules, the app, clients) lives as long as the process: moved
        # out of the collector's sight, so that a full collection walks only what requests made
        # (with the ML libraries imported that would be a pause of tens of ms on a busy process).
        gc.collect()
        gc.freeze()
        yield
        app.state.dispatch_loop.close()
        if redis_client is not None:
            redis_client.close()
        engine.dispose()

    app = FastAPI(
        title="Temper",
        version="0.1.0",
        description="Fine-tuning platform: datasets, jobs, evaluation, export and publishing.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_control_characters)],
    )
    install_error_handlers(app)
    install_openapi(app)

    app.add_middleware(ObserveRequests)

    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(queue.router)
    app.include_router(audit.router)
    app.include_router(datasets.router)
    app.include_router(jobs.router)
    app.include_router(models.router)
    app.include_router(generate.router)
    app.include_router(studies.router)
    app.include_router(webhooks.router)
    return app
