"""Admin endpoints: teams, API keys and the base-model catalog. Every change here is audited."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, status

from services.api import schemas
from services.api.deps import AdminDep, AuditorDep, ReadDep, SessionDep, SettingsDep, StoreDep
from services.api.openapi import errors
from shared.base_models.service import BaseModelService
from shared.db.models import ApiKey
from shared.teams.scopes import highest
from shared.teams.service import IssuedKey, TeamService

router = APIRouter(prefix="/v1", tags=["admin"])


def _teams(session, settings) -> TeamService:
    return TeamService(session, settings.api_key_pepper.get_secret_value())


def _issued(issued: IssuedKey) -> dict:
    return {**schemas.ApiKey.model_validate(issued.key).model_dump(), "key": issued.plaintext}


def _key_details(key: ApiKey) -> dict:
    """What an audit row says of a key: never its secret or hash."""
    return {"team_id": str(key.team_id), "name": key.name, "prefix": key.prefix, "scope": key.scope}


@router.get("/teams", response_model=list[schemas.Team], operation_id="teams_list", responses=errors(403))
def list_teams(session: SessionDep, settings: SettingsDep, _: AdminDep) -> object:
    return _teams(session, settings).list_teams()


@router.post(
    "/teams",
    response_model=schemas.Team,
    status_code=status.HTTP_201_CREATED,
    operation_id="teams_create",
    responses=errors(403, 409, 422),
)
def create_team(
    body: schemas.TeamCreate, session: SessionDep, settings: SettingsDep, _: AdminDep, audit: AuditorDep
) -> object:
    team = _teams(session, settings).create_team(body.name, body.max_concurrent_jobs)
    audit.record(
        "admin.team.create",
        "team",
        team.id,
        {"name": body.name, "max_concurrent_jobs": body.max_concurrent_jobs},
    )
    return team


@router.get(
    "/teams/{team_id}/keys",
    response_model=list[schemas.ApiKey],
    operation_id="keys_list",
    responses=errors(403, 404, 422),
)
def list_keys(team_id: uuid.UUID, session: SessionDep, settings: SettingsDep, _: AdminDep) -> object:
    return _teams(session, settings).list_keys(team_id)


@router.post(
    "/teams/{team_id}/keys",
    response_model=schemas.ApiKeyIssued,
    status_code=status.HTTP_201_CREATED,
    operation_id="keys_create",
    responses=errors(403, 404, 409, 422),
)
def create_key(
    team_id: uuid.UUID,
    body: schemas.ApiKeyCreate,
    session: SessionDep,
    settings: SettingsDep,
    _: AdminDep,
    audit: AuditorDep,
) -> object:
    """Issue a key; the answer holds its secret, which is never shown again."""
    issued = _teams(session, settings).issue_key(
        team_id, body.name, scope=highest(body.scopes), rate_limit_per_minute=body.rate_limit_per_minute
    )
    audit.record("admin.key.create", "api_key", issued.key.id, _key_details(issued.key))
    return _issued(issued)


@router.post(
    "/keys/{key_id}/revoke",
    response_model=schemas.ApiKey,
    operation_id="keys_revoke",
    responses=errors(403, 404, 409, 422),
)
def revoke_key(
    key_id: uuid.UUID, session: SessionDep, settings: SettingsDep, _: AdminDep, audit: AuditorDep
) -> object:
    """Revoke a key now (also one in a rotation's grace period): every later request with it is a 401.

    The last admin key with no revocation scheduled cannot be revoked (409): issue another first."""
    key = _teams(session, settings).revoke_key(key_id)
    audit.record("admin.key.revoke", "api_key", key.id, _key_details(key))
    return key


@router.post(
    "/keys/{key_id}/rotate",
    response_model=schemas.ApiKeyRotated,
    status_code=status.HTTP_201_CREATED,
    operation_id="keys_rotate",
    responses=errors(403, 404, 409, 422),
)
def rotate_key(
    key_id: uuid.UUID,
    body: schemas.ApiKeyRotate,
    session: SessionDep,
    settings: SettingsDep,
    _: AdminDep,
    audit: AuditorDep,
) -> object:
    """Issue a new secret with the key's team, name, scopes and rate limit, and revoke the old key
    (after `grace_seconds`, so that its users can switch over). The new secret is shown once."""
    grace = timedelta(seconds=body.grace_seconds)
    service = _teams(session, settings)
    issued = service.rotate_key(key_id, grace)
    previous = service.get_key(key_id)
    audit.record(
        "admin.key.rotate",
        "api_key",
        key_id,
        {
            **_key_details(previous),
            "new_key_id": str(issued.key.id),
            "grace_seconds": int(grace.total_seconds()),
        },
    )
    return {**_issued(issued), "previous": schemas.ApiKey.model_validate(previous).model_dump()}


@router.get(
    "/base-models",
    response_model=list[schemas.BaseModelOut],
    tags=["base-models"],
    operation_id="base_models_list",
    responses=errors(),
)
def list_base_models(session: SessionDep, _: ReadDep) -> object:
    return BaseModelService(session).list()


@router.post(
    "/base-models",
    response_model=schemas.BaseModelOut,
    status_code=status.HTTP_201_CREATED,
    tags=["base-models"],
    operation_id="base_models_register",
    responses=errors(403, 409, 422),
)
def register_base_model(
    body: schemas.BaseModelCreate,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    _: AdminDep,
    audit: AuditorDep,
) -> object:
    """Add a base model to the catalog; a GGUF source is converted once to a plain copy in the store."""
    service = BaseModelService(session, store=store, work_dir=settings.work_dir / "base_models")
    entry = service.register(body.name, body.task_family, body.source, body.description)
    audit.record(
        "admin.base_model.register",
        "base_model",
        entry.id,
        {"name": body.name, "task_family": body.task_family, "source": body.source},
    )
    return entry
