"""Teams, API keys (admin key) and the base-model catalog (read by any key, written by admins)."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterator
from datetime import datetime

from temper_client._http import HttpSession
from temper_client.types import (
    ApiKey,
    ApiKeyIssued,
    ApiKeyRotated,
    AuditEvent,
    AuditPage,
    BaseModelEntry,
    Team,
)


class Teams:
    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def list(self) -> list[Team]:
        return [Team.model_validate(item) for item in self._http.json("GET", "/v1/teams")]

    def create(self, name: str, *, max_concurrent_jobs: int | None = None) -> Team:
        body = {"name": name, "max_concurrent_jobs": max_concurrent_jobs}
        return Team.model_validate(self._http.json("POST", "/v1/teams", json=body))


class ApiKeys:
    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def list(self, team_id: uuid.UUID | str) -> list[ApiKey]:
        return [ApiKey.model_validate(item) for item in self._http.json("GET", f"/v1/teams/{team_id}/keys")]

    def create(
        self,
        team_id: uuid.UUID | str,
        *,
        name: str = "default",
        scopes: builtins.list[str] | None = None,
        is_admin: bool = False,
        rate_limit_per_minute: int | None = None,
    ) -> ApiKeyIssued:
        """Issue a key for a team; `ApiKeyIssued.key` holds the secret, which is shown only once.

        `scopes`: "read", "write" and/or "admin" (default read and write); `is_admin=True` is
        short for `scopes=["admin"]`."""
        if scopes is None:
            scopes = ["admin"] if is_admin else ["read", "write"]
        body: dict[str, object] = {"name": name, "scopes": scopes}
        if rate_limit_per_minute is not None:
            body["rate_limit_per_minute"] = rate_limit_per_minute
        return ApiKeyIssued.model_validate(self._http.json("POST", f"/v1/teams/{team_id}/keys", json=body))

    def revoke(self, key_id: uuid.UUID | str) -> ApiKey:
        """Revoke a key: every later request with it answers 401."""
        return ApiKey.model_validate(self._http.json("POST", f"/v1/keys/{key_id}/revoke", idempotent=True))

    def rotate(self, key_id: uuid.UUID | str, *, grace_seconds: int = 0) -> ApiKeyRotated:
        """A new secret for the key (same team, name, scopes and rate limit); the old key stops
        working after `grace_seconds` (at once by default). The new secret is shown only once.

        Not retried on a lost connection: a second rotation would issue another key."""
        data = self._http.json("POST", f"/v1/keys/{key_id}/rotate", json={"grace_seconds": grace_seconds})
        return ApiKeyRotated.model_validate(data)


class Audit:
    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def list(
        self,
        *,
        team_id: uuid.UUID | str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        page_size: int = 100,
    ) -> Iterator[AuditEvent]:
        """Audit events (admin key), newest first, fetched page by page. `action` is one action
        ("job.submit") or a family ("admin.key")."""
        cursor: str | None = None
        while True:
            params = {
                "team_id": str(team_id) if team_id else None,
                "action": action,
                "since": since.isoformat() if since else None,
                "cursor": cursor,
                "limit": page_size,
            }
            page = AuditPage.model_validate(self._http.json("GET", "/v1/audit", params=params))
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


class BaseModels:
    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def list(self) -> list[BaseModelEntry]:
        return [BaseModelEntry.model_validate(item) for item in self._http.json("GET", "/v1/base-models")]

    def register(
        self,
        name: str,
        *,
        source: str,
        task_family: str = "text-classification",
        description: str | None = None,
    ) -> BaseModelEntry:
        """Add a base model to the catalog; `source` is local:<dir>, package:<python package> or store:<prefix>."""
        body = {"name": name, "source": source, "task_family": task_family, "description": description}
        return BaseModelEntry.model_validate(self._http.json("POST", "/v1/base-models", json=body))
