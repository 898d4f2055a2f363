"""Request dependencies: the session (committed by whoever opened it: here), the caller, the store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import BackgroundTasks, Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from sqlalchemy.orm import Session

from services.api.auth_failures import client_address, record_key_use, refuse_failed_authentication
from services.api.ratelimit import RateLimiter
from shared.audit.service import Actor, Auditor
from shared.db.base import utcnow
from shared.db.session import session_scope
from shared.errors import Forbidden, InvalidInput, NotAuthenticated, RateLimited
from shared.settings import Settings
from shared.storage.base import ObjectStore
from shared.teams.scopes import Scope, highest
from shared.teams.service import Principal, TeamService
from shared.text import check_text


async def refuse_control_characters(request: Request) -> None:
    """Path and query parameters with NUL or other control characters are a 422 naming the parameter.

    Run for every route (the app's dependency), so that no handler, query or storage key ever sees
    one; request bodies are checked by their schemas' `Text` fields (shared.text).
    """
    parameters = [*request.path_params.items(), *request.query_params.multi_items()]
    for name, value in parameters:
        if isinstance(value, str):
            try:
                check_text(value)
            except ValueError as exc:
                raise InvalidInput(f"{name}: {exc}", details={"field": name}) from exc


# Dependencies that only read the app's state are `async def`: FastAPI runs a plain `def`
# dependency in its thread pool, a hop that costs more than the work on every request.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.session_factory) as session:
        yield session


async def get_store(request: Request) -> ObjectStore:
    return request.app.state.store


async def get_celery(request: Request) -> Celery:
    return request.app.state.celery


# scope="function": the session commits when the route returns, before the response is sent, so
# a client that sees a 201 can rely on the row being there for its next request.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
CeleryDep = Annotated[Celery, Depends(get_celery)]


# Declares the bearer scheme in the OpenAPI document; a missing or malformed header is answered by
# get_principal with the API's own 401 body, not FastAPI's.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    bearerFormat="API key",
    description="A Temper API key: 'Authorization: Bearer tmp_<prefix>_<secret>'. Each operation "
    "names the scope it needs (read, write or admin; admin implies write implies read).",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def get_principal(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credentials: BearerDep,
    background: BackgroundTasks,
) -> Principal:
    # FastAPI caches a dependency per request by (callable, security scopes), so a route that takes
    # both a scope check and the auditor would authenticate (and count against the rate limit)
    # twice; the first answer is kept on the request instead.
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    limiter: RateLimiter = request.app.state.rate_limiter
    try:
        if credentials is None or not credentials.credentials.strip():
            raise NotAuthenticated("send 'Authorization: Bearer <api key>'")
        token = credentials.credentials.strip()
        principal = TeamService(session, settings.api_key_pepper.get_secret_value()).authenticate(token)
    except NotAuthenticated as refused:
        refuse_failed_authentication(limiter, settings, client_address(request), refused)
        raise
    request.state.principal = principal
    _check_rate_limit(limiter, settings, principal)
    if principal.use_is_due(utcnow()):
        # After the answer is sent, and at most once a minute a key: never a write per request.
        background.add_task(record_key_use, request.app.state.session_factory, principal.key_id)
    return principal


def _check_rate_limit(limiter: RateLimiter, settings: Settings, principal: Principal) -> None:
    per_minute = principal.rate_limit_per_minute or settings.rate_limit_per_minute
    if not per_minute:
        return
    decision = limiter.hit(str(principal.key_id), per_minute, settings.rate_limit_burst)
    if not decision.allowed:
        raise RateLimited(
            f"too many requests with this API key (limit {per_minute} a minute); "
            f"retry after {decision.retry_after_header} s",
            retry_after_s=decision.retry_after_header,
            details={"limit_per_minute": per_minute, "burst": settings.rate_limit_burst},
        )


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_scope(security_scopes: SecurityScopes, principal: PrincipalDep) -> Principal:
    """Lets a route run only for a key holding the scope it declares (or a higher one).

    Every authenticated route takes exactly one of ReadDep, WriteDep and AdminDep: GETs (and POSTs
    that change nothing, like predict) need `read`, changes need `write`, the admin routes and
    the audit log need `admin`. Declared with `Security`, the scope appears in each operation's
    security requirement in the OpenAPI document (`bearerAuth: [write]`), which
    tests/api/test_authorization.py reads to hold every route to the rule.
    """
    needed = highest(security_scopes.scopes)
    if not principal.allows(needed):
        raise Forbidden(
            f"this needs an API key with the '{needed}' scope; this key has '{principal.scope}'",
            details={"required_scope": str(needed), "key_scope": principal.scope},
        )
    return principal


ReadDep = Annotated[Principal, Security(require_scope, scopes=[Scope.READ])]
WriteDep = Annotated[Principal, Security(require_scope, scopes=[Scope.WRITE])]
AdminDep = Annotated[Principal, Security(require_scope, scopes=[Scope.ADMIN])]


def get_auditor(request: Request, session: SessionDep, principal: PrincipalDep) -> Auditor:
    """Records into the request's session: the audit row commits or rolls back with the change."""
    actor = Actor(team_id=principal.team_id, key_id=principal.key_id, key_prefix=principal.key_prefix)
    return Auditor(session, actor, request_id=getattr(request.state, "request_id", None))


AuditorDep = Annotated[Auditor, Depends(get_auditor)]
