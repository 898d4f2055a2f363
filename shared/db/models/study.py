from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDPrimaryKey


class Study(UUIDPrimaryKey, Timestamps, Base):
    """An ablation study: a base job spec and variants of it, each run as a job, ranked by a metric."""

    __tablename__ = "studies"

    team_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(20), default="running")
    base_spec: Mapped[dict[str, Any]] = mapped_column()
    # How variants are made: {"mode": "list" | "grid" | "search", ...} as submitted.
    variants_spec: Mapped[dict[str, Any]] = mapped_column()
    metric: Mapped[str] = mapped_column(sa.String(50))
    direction: Mapped[str] = mapped_column(sa.String(10), default="maximize")
    max_concurrency: Mapped[int] = mapped_column(sa.Integer(), default=2)
    trial_budget: Mapped[int] = mapped_column(sa.Integer())
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)


class StudyVariant(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "study_variants"
    __table_args__ = (sa.UniqueConstraint("study_id", "position", name="uq_study_variants_study_position"),)

    study_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(sa.Integer())
    overrides: Mapped[dict[str, Any]] = mapped_column()
    job_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("jobs.id"), index=True)
    # Why a variant never became a job (its spec was refused), when that happened.
    error: Mapped[str | None] = mapped_column(sa.Text())
