"""Teams, API keys (admin key) and the base-model catalog (read by any key, written by admins)."""

from __future__ import annotations

import uuid

from temper_client._http import HttpSession
from temper_client.types import ApiKey, ApiKeyIssued, BaseModelEntry, Team


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
        self, team_id: uuid.UUID | str, *, name: str = "default", is_admin: bool = False
    ) -> ApiKeyIssued:
        """Issue a key for a team; `ApiKeyIssued.key` holds the secret, which is shown only once."""
        body = {"name": name, "is_admin": is_admin}
        return ApiKeyIssued.model_validate(self._http.json("POST", f"/v1/teams/{team_id}/keys", json=body))

    def revoke(self, key_id: uuid.UUID | str) -> ApiKey:
        """Revoke a key: every later request with it answers 401."""
        return ApiKey.model_validate(self._http.json("POST", f"/v1/keys/{key_id}/revoke", idempotent=True))


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
