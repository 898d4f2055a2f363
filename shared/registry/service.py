"""The model registry: published versions, the `production` alias, promote and rollback.

Triton serves what the registry says: moving the alias (promote, rollback) puts a
`LoadModelVersion` on the outbox, and after the commit the process pins every model of the
published set (tokenizer, ONNX, TensorRT when built, then the ensemble) to that version through
Triton's repository API. Without a Triton URL only the alias moves. If the load fails after the
commit, Triton's reconcile loads the production versions it lacks.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from shared.db.models import ModelPromotion, ModelVersion, RegisteredModel
from shared.db.outbox import LoadModelVersion, outbox
from shared.errors import Conflict, NotFound
from shared.registry.repository import RegistryRepository


class RegistryService:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.registry = RegistryRepository(session)

    def get_model(self, team_id: uuid.UUID, name: str) -> RegisteredModel:
        model = self.registry.get_model(team_id, name)
        if model is None:
            raise NotFound(f"model '{name}' not found")
        return model

    def list_models(self, team_id: uuid.UUID) -> list[RegisteredModel]:
        return self.registry.list_models(team_id)

    def list_versions(self, team_id: uuid.UUID, name: str) -> list[ModelVersion]:
        return self.registry.list_versions(self.get_model(team_id, name).id)

    def get_version(
        self, team_id: uuid.UUID, name: str, version: int
    ) -> tuple[RegisteredModel, ModelVersion]:
        model = self.get_model(team_id, name)
        row = self.registry.get_version(model.id, version)
        if row is None:
            raise NotFound(f"model '{name}' has no version {version}")
        return model, row

    def production_version(self, team_id: uuid.UUID, name: str) -> ModelVersion | None:
        model = self.registry.get_model(team_id, name)
        if model is None or model.production_version is None:
            return None
        return self.registry.get_version(model.id, model.production_version)

    def ensure_model(self, team_id: uuid.UUID, team_name: str, name: str, task: str) -> RegisteredModel:
        model = self.registry.get_model(team_id, name, for_update=True)
        if model is not None:
            return model
        # Triton's repository is one namespace for all teams: prefix the team.
        repository_name = f"{team_name}--{name}".lower()
        if self.registry.get_by_repository_name(repository_name) is not None:
            raise Conflict(f"the repository name '{repository_name}' is taken")
        model = RegisteredModel(team_id=team_id, name=name, repository_name=repository_name, task=task)
        self.registry.add(model)
        return model

    def reserve_version(self, model: RegisteredModel, job_id: uuid.UUID) -> int:
        """The version number this job publishes as: the same one again when the stage re-runs."""
        existing = self.registry.version_for_job(job_id)
        if existing is not None:
            return existing.version
        return self.registry.next_version(model.id)

    def record_version(
        self,
        model: RegisteredModel,
        version: int,
        job_id: uuid.UUID,
        formats: list[str],
        lineage: dict[str, Any],
    ) -> ModelVersion:
        existing = self.registry.version_for_job(job_id)
        if existing is not None:
            return existing
        row = ModelVersion(
            model_id=model.id, version=version, job_id=job_id, formats=formats, lineage=lineage
        )
        self.registry.add(row)
        return row

    def promote(self, model: RegisteredModel, version: int, action: str = "promote") -> None:
        row = self.registry.get_version(model.id, version)
        if row is None:
            raise NotFound(f"model '{model.name}' has no version {version}")
        if model.production_version == version:
            return
        outbox(self.session).add(LoadModelVersion(model.repository_name, version, tuple(row.formats)))
        self.registry.add(
            ModelPromotion(
                model_id=model.id, version=version, action=action, from_version=model.production_version
            )
        )
        model.production_version = version

    def rollback(self, model: RegisteredModel) -> int:
        """Back to the version that was in production before the current one."""
        if model.production_version is None:
            raise Conflict(f"model '{model.name}' has no production version to roll back from")
        current = model.production_version
        history = [promotion.version for promotion in self.registry.promotions(model.id)]
        # Walk back past every entry of the current version to the one before it.
        previous = next((version for version in reversed(history) if version != current), None)
        if previous is None:
            raise Conflict(f"model '{model.name}' has no earlier production version than {current}")
        self.promote(model, previous, action="rollback")
        return previous
