"""The audit log, for admins: who changed what, newest first."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from services.api import schemas
from services.api.deps import AdminDep, SessionDep
from services.api.openapi import errors
from shared.audit.service import AuditService
from shared.text import Text

router = APIRouter(prefix="/v1/audit", tags=["admin"])


@router.get("", response_model=schemas.AuditPage, operation_id="audit_list", responses=errors(403, 422))
def list_audit_events(
    session: SessionDep,
    _: AdminDep,
    team_id: Annotated[uuid.UUID | None, Query(description="Only what this team's keys did")] = None,
    action: Annotated[
        Text | None,
        Query(
            max_length=50,
            description="An action (job.submit) or a family of them (admin.key: create, revoke, rotate)",
        ),
    ] = None,
    since: Annotated[
        datetime | None, Query(description="Only events at or after this time (ISO 8601)")
    ] = None,
    cursor: Text | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> object:
    items, next_cursor = AuditService(session).list(
        team_id=team_id, action=action, since=since, cursor=cursor, limit=limit
    )
    return {"items": items, "next_cursor": next_cursor}
