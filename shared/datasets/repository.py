from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.db.models import Dataset, Job


class DatasetRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get_for_team(self, team_id: uuid.UUID, dataset_id: uuid.UUID) -> Dataset | None:
        return self.session.scalar(
            sa.select(Dataset).where(Dataset.id == dataset_id, Dataset.team_id == team_id)
        )

    def get(self, dataset_id: uuid.UUID) -> Dataset | None:
        return self.session.get(Dataset, dataset_id)

    def list_for_team(self, team_id: uuid.UUID, limit: int, task: str | None = None) -> list[Dataset]:
        query = sa.select(Dataset).where(Dataset.team_id == team_id)
        if task is not None:
            query = query.where(Dataset.task == task)
        return list(self.session.scalars(query.order_by(Dataset.created_at.desc(), Dataset.id).limit(limit)))

    def add(self, dataset: Dataset) -> Dataset:
        self.session.add(dataset)
        self.session.flush()
        return dataset

    def delete(self, dataset: Dataset) -> None:
        self.session.delete(dataset)
        self.session.flush()

    def jobs_using(self, dataset_id: uuid.UUID) -> list[uuid.UUID]:
        query = sa.select(Job.id).where(
            sa.or_(
                Job.train_dataset_id == dataset_id,
                Job.validation_dataset_id == dataset_id,
                Job.test_dataset_id == dataset_id,
            )
        )
        return list(self.session.scalars(query))

    def other_references_to_object(self, object_key: str, excluding: uuid.UUID) -> int:
        query = sa.select(sa.func.count()).where(Dataset.object_key == object_key, Dataset.id != excluding)
        return self.session.scalar(query) or 0
