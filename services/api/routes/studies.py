"""Ablation studies over REST: create one, watch its variants, read the ranking, cancel it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict

from services.api import schemas
from services.api.deps import AuditorDep, ReadDep, SessionDep, SettingsDep, StoreDep, WriteDep
from services.api.openapi import errors
from shared.studies.report import study_summary, study_view
from shared.studies.service import StudyService
from shared.studies.spec import StudySpec

router = APIRouter(prefix="/v1/studies", tags=["studies"])


class StudyVariantError(schemas.ApiModel):
    code: str
    message: str | None
    stage: str | None = None


class StudyVariantChange(schemas.ApiModel):
    """The variant's metric minus the base variant's on the same test rows, with a paired bootstrap CI."""

    metric: str
    delta: float
    low: float | None
    high: float | None
    confidence: float
    rows: int


class StudyVariant(schemas.ApiModel):
    position: int
    overrides: dict[str, Any]
    status: str
    job_id: uuid.UUID | None
    job_status: str | None
    metric_value: float | None
    rank: int | None
    error: StudyVariantError | None
    change: StudyVariantChange | None
    change_summary: str | None


class StudySummary(schemas.ApiModel):
    id: uuid.UUID
    name: str | None
    status: str
    mode: str | None
    metric: str
    direction: str
    max_concurrency: int
    trial_budget: int
    variant_count: int
    best: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class Study(StudySummary):
    base_spec: dict[str, Any]
    variants_spec: dict[str, Any]
    result: dict[str, Any]
    variants: list[StudyVariant]


class StudyCreate(StudySpec):
    """A study: the base spec (a JobCreate without name) runs as variant 0, then each variant."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "learning-rate sweep",
                    "base_spec": {
                        "base_model": "minilm",
                        "train_dataset_id": "0b7c6a4e-2f1d-4c8e-9a51-3d2f7e8b9c10",
                        "test_dataset_id": "5e3a9d21-7c4b-4f0e-8d6a-1b2c3d4e5f60",
                    },
                    "variants": {
                        "mode": "grid",
                        "grid": {"hyperparameters.learning_rate": [5e-5, 1e-4, 2e-4]},
                    },
                    "metric": "f1_macro",
                }
            ]
        }
    )


class StudyPage(BaseModel):
    items: list[StudySummary]
    next_cursor: str | None = None


@router.post(
    "",
    response_model=Study,
    status_code=status.HTTP_201_CREATED,
    operation_id="studies_create",
    responses=errors(403, 422),
)
def create_study(
    body: StudyCreate,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    principal: WriteDep,
    audit: AuditorDep,
) -> object:
    service = StudyService(session, gpu_workers=settings.gpu_workers)
    study = service.create(principal.team_id, body)
    audit.record("study.create", "study", study.id, {"name": body.name})
    return study_view(study, service.variants(study), store)


@router.get("", response_model=StudyPage, operation_id="studies_list", responses=errors(422))
def list_studies(
    session: SessionDep,
    principal: ReadDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> object:
    service = StudyService(session)
    studies, next_cursor = service.list(principal.team_id, cursor, limit)
    counts = service.variant_counts(studies)
    return {
        "items": [study_summary(study, counts.get(study.id, 0)) for study in studies],
        "next_cursor": next_cursor,
    }


@router.get("/{study_id}", response_model=Study, operation_id="studies_get", responses=errors(404, 422))
def get_study(study_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: ReadDep) -> object:
    service = StudyService(session)
    study = service.get(principal.team_id, study_id)
    return study_view(study, service.variants(study), store)


@router.post(
    "/{study_id}/cancel",
    response_model=Study,
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="studies_cancel",
    responses=errors(403, 404, 409, 422),
)
def cancel_study(
    study_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: WriteDep, audit: AuditorDep
) -> object:
    service = StudyService(session)
    study = service.cancel(principal.team_id, study_id)
    audit.record("study.cancel", "study", study_id)
    return study_view(study, service.variants(study), store)
