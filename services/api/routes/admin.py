"""Admin endpoints: teams, API keys and the base-model catalog."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from services.api import schemas
from services.api.deps import AdminDep, PrincipalDep, SessionDep, SettingsDep, StoreDep
from services.api.openapi import errors
from shared.base_models.service import BaseModelService
from shared.teams.service import TeamService

router = APIRouter(prefix="/v1", tags=["admin"])


def _teams(session, settings) -> TeamService:
    return TeamService(session, settings.api_key_pepper.get_secret_value())


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
def create_team(body: schemas.TeamCreate, session: SessionDep, settings: SettingsDep, _: AdminDep) -> object:
    return _teams(session, settings).create_team(body.name, body.max_concurrent_jobs)


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
    team_id: uuid.UUID, body: schemas.ApiKeyCreate, session: SessionDep, settings: SettingsDep, _: AdminDep
) -> object:
    issued = _teams(session, settings).issue_key(team_id, body.name, is_admin=body.is_admin)
    session.flush()
    return schemas.ApiKeyIssued.model_validate(
        {**schemas.ApiKey.model_validate(issued.key).model_dump(), "key": issued.plaintext}
    )


@router.post(
    "/keys/{key_id}/revoke",
    response_model=schemas.ApiKey,
    operation_id="keys_revoke",
    responses=errors(403, 404, 422),
)
def revoke_key(key_id: uuid.UUID, session: SessionDep, settings: SettingsDep, _: AdminDep) -> object:
    return _teams(session, settings).revoke_key(key_id)


@router.get(
    "/base-models",
    response_model=list[schemas.BaseModelOut],
    tags=["base-models"],
    operation_id="base_models_list",
    responses=errors(),
)
def list_base_models(session: SessionDep, _: PrincipalDep) -> object:
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
    body: schemas.BaseModelCreate, session: SessionDep, settings: SettingsDep, store: StoreDep, _: AdminDep
) -> object:
    """Add a base model to the catalog; a GGUF source is converted once to a plain copy in the store."""
    service = BaseModelService(session, store=store, work_dir=settings.work_dir / "base_models")
    return service.register(body.name, body.task_family, body.source, body.description)
