"""Requests with a missing or bad API key: slowed per client address, logged and counted; and the
record of a good key's last use.

Key guessing shows up as a run of 401s from one address. Each failure is counted against that
address on the same GCRA limiter as the per-key limits (Redis when the deployment has it, so every
API process shares the count): after a burst, further failures get a 429 with `Retry-After` instead
of a 401. A request with a good key is still served from that address (a NAT or a proxy may put a
broken client and healthy ones behind one address): the limit holds back whoever keeps failing,
the log line and the counter say that it happens. What a failure never logs is the key it sent.
"""

from __future__ import annotations

import uuid

import structlog
from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from services.api.ratelimit import RateLimiter
from shared.db.session import session_scope
from shared.errors import NotAuthenticated, RateLimited
from shared.observability import AUTH_FAILURES
from shared.settings import Settings
from shared.teams.service import record_key_use as record_use

log = structlog.get_logger(__name__)


def client_address(request: Request) -> str:
    """The ASGI client's address; Temper reads no forwarding header itself (any caller can send one).

    Behind a proxy this is the proxy's address unless uvicorn was told to trust it: uvicorn's
    `--proxy-headers` (its default) takes the client from X-Forwarded-For only when the connection
    comes from an address in `--forwarded-allow-ips` (env FORWARDED_ALLOW_IPS, default 127.0.0.1).
    """
    return request.client.host if request.client is not None else "unknown"


def refuse_failed_authentication(
    limiter: RateLimiter, settings: Settings, address: str, refused: NotAuthenticated
) -> None:
    """Count a failed authentication against its address; raise a 429 once the address is over its
    budget (the caller raises the 401 otherwise)."""
    per_minute = settings.auth_failures_per_minute
    if not per_minute:
        AUTH_FAILURES.labels(outcome="rejected").inc()
        return
    decision = limiter.hit(f"auth-failures:{address}", per_minute, settings.auth_failure_burst)
    if decision.allowed:
        AUTH_FAILURES.labels(outcome="rejected").inc()
        log.info("authentication failed", client=address, reason=refused.message)
        return
    AUTH_FAILURES.labels(outcome="rate_limited").inc()
    # One warning a minute per address for the whole run of refusals (the limiter counts that too),
    # so that a flood of bad requests cannot become a flood of log lines.
    if limiter.hit(f"auth-failures-logged:{address}", 1, 1).allowed:
        log.warning(
            "repeated authentication failures; refusing this address's bad keys for a while",
            client=address,
            limit_per_minute=per_minute,
            burst=settings.auth_failure_burst,
            retry_after_s=decision.retry_after_header,
        )
    raise RateLimited(
        f"too many requests with a missing or bad API key from this address (limit {per_minute} a "
        f"minute); retry after {decision.retry_after_header} s",
        retry_after_s=decision.retry_after_header,
        details={"limit_per_minute": per_minute, "burst": settings.auth_failure_burst},
    )


def record_key_use(session_factory: sessionmaker[Session], key_id: uuid.UUID) -> None:
    """Write the key's `last_used_at` (run after the answer is sent; at most once a minute a key)."""
    try:
        with session_scope(session_factory) as session:
            record_use(session, key_id)
    except SQLAlchemyError as exc:
        # Losing one mark of use is harmless: the next request a minute on writes it.
        log.warning("key use not recorded", key_id=str(key_id), error=f"{type(exc).__name__}: {exc}")
