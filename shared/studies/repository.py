"""Every query on studies and their variants."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.db.models import Job, Study, StudyVariant

# A variant with its job (None until it is submitted).
VariantRow = tuple[StudyVariant, Job | None]


class StudyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, study: Study) -> Study:
        self.session.add(study)
        self.session.flush()
        return study

    def add_variant(self, variant: StudyVariant) -> StudyVariant:
        self.session.add(variant)
        self.session.flush()
        return variant

    def get(self, study_id: uuid.UUID, *, for_update: bool = False) -> Study | None:
        query = sa.select(Study).where(Study.id == study_id)
        if for_update:
            # Serializes concurrent advances of one study on Postgres; SQLite ignores it and relies
            # on its single writer plus the idempotency keys of the submitted jobs.
            query = query.with_for_update()
        return self.session.scalar(query)

    def get_for_team(self, team_id: uuid.UUID, study_id: uuid.UUID) -> Study | None:
        return self.session.scalar(sa.select(Study).where(Study.id == study_id, Study.team_id == team_id))

    def list_for_team(
        self, team_id: uuid.UUID, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Study]:
        query = sa.select(Study).where(Study.team_id == team_id)
        if before is not None:
            created_at, study_id = before
            query = query.where(
                sa.or_(
                    Study.created_at < created_at,
                    sa.and_(Study.created_at == created_at, Study.id < study_id),
                )
            )
        return list(
            self.session.scalars(query.order_by(Study.created_at.desc(), Study.id.desc()).limit(limit))
        )

    def variants_with_jobs(self, study_id: uuid.UUID) -> list[VariantRow]:
        """The study's variants in position order, each with its job (None until it is submitted)."""
        query = (
            sa.select(StudyVariant, Job)
            .outerjoin(Job, Job.id == StudyVariant.job_id)
            .where(StudyVariant.study_id == study_id)
            .order_by(StudyVariant.position)
        )
        return [(variant, job) for variant, job in self.session.execute(query).all()]

    def variant_counts(self, study_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        query = (
            sa.select(StudyVariant.study_id, sa.func.count())
            .where(StudyVariant.study_id.in_(study_ids))
            .group_by(StudyVariant.study_id)
        )
        return {study_id: count for study_id, count in self.session.execute(query).all()}
