from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db.base import Base, Timestamps, UUIDPrimaryKey


class Team(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "teams"

    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    # Quotas; None falls back to the deployment's defaults (Settings). A job over them is accepted
    # and waits in `queued` (`shared.jobs.dispatch`).
    max_concurrent_jobs: Mapped[int | None] = mapped_column(sa.Integer(), default=None)
    gpu_hours_per_period: Mapped[float | None] = mapped_column(sa.Float(), default=None)
    # When the dispatcher last gave this team a slot: teams with equal running jobs take turns by it.
    last_admitted_at: Mapped[datetime | None] = mapped_column()

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="team", lazy="raise")


class ApiKey(UUIDPrimaryKey, Timestamps, Base):
    """An API key. Only an HMAC of the secret is stored; `prefix` finds the row without it."""

    __tablename__ = "api_keys"

    team_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    prefix: Mapped[str] = mapped_column(sa.String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64))
    # The highest scope the key holds: "read", "write" or "admin"; each implies the ones before it
    # (shared.teams.scopes), so one value says everything.
    scope: Mapped[str] = mapped_column(sa.String(10), default="write")
    # Requests per minute for this key, over the server's TEMPER_RATE_LIMIT_PER_MINUTE when set.
    rate_limit_per_minute: Mapped[int | None] = mapped_column(sa.Integer(), default=None)
    last_used_at: Mapped[datetime | None] = mapped_column()
    # A key is refused from this moment on; a rotated key gets one in the future (its grace period).
    revoked_at: Mapped[datetime | None] = mapped_column()

    team: Mapped[Team] = relationship(back_populates="api_keys", lazy="raise")
