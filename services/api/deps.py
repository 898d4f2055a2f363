"""Request dependencies: the session (committed by whoever opened it: here), the caller, the store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from shared.db.session import session_scope
from shared.errors import Forbidden, NotAuthenticated
from shared.settings import Settings
from shared.storage.base import ObjectStore
from shared.teams.service import Principal, TeamService


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
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this needs an admin API key")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
