from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDPrimaryKey


class Dataset(UUIDPrimaryKey, Timestamps, Base):
    """An uploaded, validated dataset. The file itself is content-addressed in the object store."""

    __tablename__ = "datasets"

    team_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    task: Mapped[str] = mapped_column(sa.String(50))
    format: Mapped[str] = mapped_column(sa.String(20))
    filename: Mapped[str] = mapped_column(sa.String(500))
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger())
    object_key: Mapped[str] = mapped_column(sa.String(500))
    row_count: Mapped[int] = mapped_column(sa.Integer())
    labels: Mapped[list[Any]] = mapped_column(default=list)
    column_mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
