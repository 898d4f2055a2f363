from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, UUIDPrimaryKey, utcnow


class AuditEvent(UUIDPrimaryKey, Base):
    """Who changed what, written in the transaction of the change (a rolled-back change leaves none).

    No foreign keys: the trail must outlive the keys, teams and objects it names.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        sa.Index("ix_audit_events_created", "created_at", "id"),
        sa.Index("ix_audit_events_team_created", "team_id", "created_at"),
    )

    created_at: Mapped[datetime] = mapped_column(server_default=sa.text("CURRENT_TIMESTAMP"), default=utcnow)
    # The caller: its team and key (the prefix stays readable once the key is gone).
    team_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid())
    key_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid())
    key_prefix: Mapped[str | None] = mapped_column(sa.String(16))
    # "job.submit", "admin.key.rotate", ... (shared.audit.actions)
    action: Mapped[str] = mapped_column(sa.String(50), index=True)
    target_type: Mapped[str] = mapped_column(sa.String(30))
    target_id: Mapped[str | None] = mapped_column(sa.String(200))
    request_id: Mapped[str | None] = mapped_column(sa.String(100))
    # What was asked, without secrets (the service that records it chooses the fields).
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
