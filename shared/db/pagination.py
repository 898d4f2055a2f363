"""Keyset pagination: one opaque cursor format for every list that pages newest first."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from shared.errors import InvalidInput


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """The cursor that continues after the row (`created_at`, `row_id`)."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created_at, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created_at), uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("the cursor is not one this API gave out", details={"field": "cursor"}) from exc
