"""Request dependencies: the session (committed by whoever opened it: here), the caller, the store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from services.api.ratelimit import RateLimiter
from shared.audit.service import Actor, Auditor
from shared.db.session import session_scope
from shared.errors import Forbidden, InvalidInput, NotAuthenticated, RateLimited
from shared.settings import Settings
from shared.storage.base import ObjectStore
from shared.teams.scopes import Scope
from shared.teams.service import Principal, TeamService
from shared.text import check_text


def refuse_control_characters(request: Request) -> None:
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


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.session_factory) as session:
        yield session


def get_store(request: Request) -> ObjectStore:
    return request.app.state.store


def get_celery(request: Request) -> Celery:
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
    description="A Temper API key: 'Authorization: Bearer tmp_<prefix>_<secret>'",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def get_principal(
    request: Request, session: SessionDep, settings: SettingsDep, credentials: BearerDep
) -> Principal:
    if credentials is None or not credentials.credentials.strip():
        raise NotAuthenticated("send 'Authorization: Bearer <api key>'")
    token = credentials.credentials.strip()
    principal = TeamService(session, settings.api_key_pepper.get_secret_value()).authenticate(token)
    request.state.principal = principal
    _check_rate_limit(request.app.state.rate_limiter, settings, principal)
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


class ScopeCheck:
    """The dependency that lets a route run only for a key holding `scope` (or a higher one).

    Every authenticated route takes exactly one of ReadDep, WriteDep and AdminDep: GETs (and
    POSTs that change nothing, like predict) need `read`, changes need `write`, the admin routes
    and the audit log need `admin`. tests/api/test_authorization.py enumerates the routes and
    holds them to it.
    """

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __call__(self, principal: PrincipalDep) -> Principal:
        if not principal.allows(self.scope):
            raise Forbidden(
                f"this needs an API key with the '{self.scope}' scope; this key has '{principal.scope}'",
                details={"required_scope": str(self.scope), "key_scope": principal.scope},
            )
        return principal


ReadDep = Annotated[Principal, Depends(ScopeCheck(Scope.READ))]
WriteDep = Annotated[Principal, Depends(ScopeCheck(Scope.WRITE))]
AdminDep = Annotated[Principal, Depends(ScopeCheck(Scope.ADMIN))]


def get_auditor(request: Request, session: SessionDep, principal: PrincipalDep) -> Auditor:
    """Records into the request's session: the audit row commits or rolls back with the change."""
    actor = Actor(team_id=principal.team_id, key_id=principal.key_id, key_prefix=principal.key_prefix)
    return Auditor(session, actor, request_id=getattr(request.state, "request_id", None))


AuditorDep = Annotated[Auditor, Depends(get_auditor)]
