"""The audit trail: who changed what.

An `Auditor` is bound to one unit of work (the request's session) and its caller; `record` adds a
row to that session, so the row commits with the change it describes and rolls back with it. The
caller chooses `details`; it must hold what was asked, never a secret (no key, no webhook secret):
`record` refuses the field names that carry them, as a guard against a careless caller.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from shared.audit.repository import AuditRepository
from shared.db.models import AuditEvent
from shared.db.pagination import decode_cursor, encode_cursor

# Field names that never belong in an audit row's details.
SECRET_FIELDS = frozenset({"key", "secret", "password", "token", "plaintext", "api_key"})


@dataclass(frozen=True)
class Actor:
    team_id: uuid.UUID | None
    key_id: uuid.UUID | None
    key_prefix: str | None


class Auditor:
    def __init__(self, session: Session, actor: Actor, request_id: str | None = None) -> None:
        self.events = AuditRepository(session)
        self.actor = actor
        self.request_id = request_id

    def record(
        self,
        action: str,
        target_type: str,
        target_id: object = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEvent:
        details = dict(details or {})
        leaked = SECRET_FIELDS.intersection(details)
        if leaked:
            raise ValueError(f"audit details must not hold secrets: {sorted(leaked)}")
        return self.events.add(
            AuditEvent(
                team_id=self.actor.team_id,
                key_id=self.actor.key_id,
                key_prefix=self.actor.key_prefix,
                action=action,
                target_type=target_type,
                target_id=None if target_id is None else str(target_id),
                request_id=self.request_id,
                details=details,
            )
        )


class AuditService:
    def __init__(self, session: Session) -> None:
        self.events = AuditRepository(session)

    def list(
        self,
        *,
        team_id: uuid.UUID | None,
        action: str | None,
        since: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[AuditEvent], str | None]:
        before = decode_cursor(cursor) if cursor else None
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)  # a time without a zone is read as UTC
        rows = self.events.list(team_id=team_id, action=action, since=since, before=before, limit=limit + 1)
        last = rows[limit - 1] if len(rows) > limit else None
        return rows[:limit], encode_cursor(last.created_at, last.id) if last else None
