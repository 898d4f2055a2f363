from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDPrimaryKey, utcnow


class RegisteredModel(UUIDPrimaryKey, Timestamps, Base):
    """A model name in the registry; its versions are published jobs. `repository_name` is the
    name in the Triton repository, unique across teams."""

    __tablename__ = "registered_models"
    __table_args__ = (sa.UniqueConstraint("team_id", "name", name="uq_registered_models_team_name"),)

    team_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    repository_name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    task: Mapped[str] = mapped_column(sa.String(50))
    production_version: Mapped[int | None] = mapped_column(sa.Integer())


class ModelVersion(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "model_versions"
    __table_args__ = (sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),)

    model_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("registered_models.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(sa.Integer())
    job_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("jobs.id"), unique=True)
    formats: Mapped[list[Any]] = mapped_column(default=list)
    # Job, base model, dataset hashes, spec, evaluation summary, export parity.
    lineage: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ModelPromotion(Base):
    """Every move of the `production` alias, in order: rollback walks this back."""

    __tablename__ = "model_promotions"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    model_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("registered_models.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(sa.Integer())
    action: Mapped[str] = mapped_column(sa.String(20))
    from_version: Mapped[int | None] = mapped_column(sa.Integer())
    created_at: Mapped[datetime] = mapped_column(server_default=sa.text("CURRENT_TIMESTAMP"), default=utcnow)
