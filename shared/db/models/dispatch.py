from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, utcnow


class DispatchState(Base):
    """The dispatcher's one row. Every dispatch pass starts by updating it, which serializes passes
    on every database (a row lock on Postgres, the write lock on SQLite); an admin's pause lives here."""

    __tablename__ = "dispatch_state"

    id: Mapped[int] = mapped_column(sa.Integer(), primary_key=True, autoincrement=False)
    paused: Mapped[bool] = mapped_column(sa.Boolean(), default=False)
    paused_reason: Mapped[str | None] = mapped_column(sa.String(500))
    last_pass_at: Mapped[datetime] = mapped_column(default=utcnow)
