from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDPrimaryKey, utcnow


class WebhookEndpoint(UUIDPrimaryKey, Timestamps, Base):
    """Where a team wants to hear about job and study events, and the secret deliveries are signed with."""

    __tablename__ = "webhook_endpoints"

    team_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    description: Mapped[str | None] = mapped_column(sa.String(200))
    # The signing secret, encrypted under a key from the settings ("fernet:<key id>:<token>",
    # shared.webhooks.secret_box): every delivery is signed with the secret itself, so it cannot be
    # stored as an HMAC like an API key, and the database alone must not be enough to forge
    # Temper's signatures. Shown once, at creation, and never logged.
    secret_encrypted: Mapped[str] = mapped_column(sa.String(500))
    # The event types delivered here ("job.succeeded", ...).
    events: Mapped[list[Any]] = mapped_column()
    active: Mapped[bool] = mapped_column(sa.Boolean(), default=True)


class WebhookDelivery(UUIDPrimaryKey, Base):
    """One attempt to deliver one event to one endpoint. A retry is a new row with the same event id."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),)

    endpoint_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    # The same for every attempt of the event at this endpoint: receivers deduplicate on it.
    event_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), index=True)
    event_type: Mapped[str] = mapped_column(sa.String(50))
    payload: Mapped[dict[str, Any]] = mapped_column()
    attempt: Mapped[int] = mapped_column(sa.Integer())
    # pending (not yet sent), succeeded (a 2xx), failed (anything else; `next_retry_at` when the
    # next attempt is already scheduled).
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    status_code: Mapped[int | None] = mapped_column(sa.Integer())
    error: Mapped[str | None] = mapped_column(sa.Text())
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer())
    next_retry_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=sa.text("CURRENT_TIMESTAMP"), default=utcnow)
    # When this attempt finished (an answer, a timeout or a refused connection).
    finished_at: Mapped[datetime | None] = mapped_column()
