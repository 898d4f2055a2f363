from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.db.models import ModelPromotion, ModelVersion, RegisteredModel


class RegistryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get_model(self, team_id: uuid.UUID, name: str, *, for_update: bool = False) -> RegisteredModel | None:
        query = sa.select(RegisteredModel).where(
            RegisteredModel.team_id == team_id, RegisteredModel.name == name
        )
        if for_update:
            query = query.with_for_update()
        return self.session.scalar(query)

    def get_model_by_id(self, model_id: uuid.UUID) -> RegisteredModel | None:
        return self.session.get(RegisteredModel, model_id)

    def get_by_repository_name(self, repository_name: str) -> RegisteredModel | None:
        query = sa.select(RegisteredModel).where(RegisteredModel.repository_name == repository_name)
        return self.session.scalar(query)

    def list_models(self, team_id: uuid.UUID) -> list[RegisteredModel]:
        query = (
            sa.select(RegisteredModel)
            .where(RegisteredModel.team_id == team_id)
            .order_by(RegisteredModel.name)
        )
        return list(self.session.scalars(query))

    def add(self, row: RegisteredModel | ModelVersion | ModelPromotion) -> None:
        self.session.add(row)
        self.session.flush()

    def list_versions(self, model_id: uuid.UUID) -> list[ModelVersion]:
        query = (
            sa.select(ModelVersion).where(ModelVersion.model_id == model_id).order_by(ModelVersion.version)
        )
        return list(self.session.scalars(query))

    def get_version(self, model_id: uuid.UUID, version: int) -> ModelVersion | None:
        query = sa.select(ModelVersion).where(
            ModelVersion.model_id == model_id, ModelVersion.version == version
        )
        return self.session.scalar(query)

    def version_for_job(self, job_id: uuid.UUID) -> ModelVersion | None:
        return self.session.scalar(sa.select(ModelVersion).where(ModelVersion.job_id == job_id))

    def next_version(self, model_id: uuid.UUID) -> int:
        query = sa.select(sa.func.max(ModelVersion.version)).where(ModelVersion.model_id == model_id)
        return (self.session.scalar(query) or 0) + 1

    def production_versions(self) -> list[tuple[RegisteredModel, ModelVersion]]:
        """Every model that has a production version, with that version's row (all teams)."""
        query = (
            sa.select(RegisteredModel, ModelVersion)
            .join(
                ModelVersion,
                (ModelVersion.model_id == RegisteredModel.id)
                & (ModelVersion.version == RegisteredModel.production_version),
            )
            .order_by(RegisteredModel.repository_name)
        )
        return [(model, version) for model, version in self.session.execute(query)]

    def promotions(self, model_id: uuid.UUID) -> list[ModelPromotion]:
        query = (
            sa.select(ModelPromotion).where(ModelPromotion.model_id == model_id).order_by(ModelPromotion.id)
        )
        return list(self.session.scalars(query))
