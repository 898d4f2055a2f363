from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.db.models import AuditEvent


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, event: AuditEvent) -> AuditEvent:
        self.session.add(event)
        self.session.flush()
        return event

    def list(
        self,
        *,
        team_id: uuid.UUID | None = None,
        action: str | None = None,
        since: datetime | None = None,
        before: tuple[datetime, uuid.UUID] | None = None,
        limit: int = 50,
    ) -> list[AuditEvent]:
        """Newest first, after the row `before` (the pagination cursor's) when given."""
        query = sa.select(AuditEvent)
        if team_id is not None:
            query = query.where(AuditEvent.team_id == team_id)
        if action is not None:
            # "admin.key" matches admin.key.create, .revoke and .rotate; "job.submit" only itself.
            query = query.where(
                sa.or_(
                    AuditEvent.action == action, AuditEvent.action.startswith(f"{action}.", autoescape=True)
                )
            )
        if since is not None:
            query = query.where(AuditEvent.created_at >= since)
        if before is not None:
            created_at, row_id = before
            query = query.where(
                sa.or_(
                    AuditEvent.created_at < created_at,
                    sa.and_(AuditEvent.created_at == created_at, AuditEvent.id < row_id),
                )
            )
        query = query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)
        return list(self.session.scalars(query))
