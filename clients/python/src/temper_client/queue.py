"""Admission, for admin keys: the queue as the dispatcher sees it, pausing it, and team quotas."""

from __future__ import annotations

import uuid

from temper_client._http import HttpSession
from temper_client.types import QueueState, TeamQuota


class Queue:
    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def get(self) -> QueueState:
        """Worker slots, running and waiting jobs, and each team with jobs: quotas, usage, what blocks it."""
        return QueueState.model_validate(self._http.json("GET", "/v1/queue"))

    def pause(self, reason: str | None = None) -> QueueState:
        """Admit no more jobs (running ones go on; new ones are accepted and wait)."""
        body = {"reason": reason}
        return QueueState.model_validate(
            self._http.json("POST", "/v1/queue/pause", json=body, idempotent=True)
        )

    def resume(self) -> QueueState:
        return QueueState.model_validate(self._http.json("POST", "/v1/queue/resume", idempotent=True))

    def quota(self, team_id: uuid.UUID | str) -> TeamQuota:
        return TeamQuota.model_validate(self._http.json("GET", f"/v1/teams/{team_id}/quota"))

    def set_quota(
        self,
        team_id: uuid.UUID | str,
        *,
        max_concurrent_jobs: int | None = None,
        gpu_hours_per_period: float | None = None,
    ) -> TeamQuota:
        """Set a team's quotas; None means the deployment's default."""
        body = {"max_concurrent_jobs": max_concurrent_jobs, "gpu_hours_per_period": gpu_hours_per_period}
        answer = self._http.json("PUT", f"/v1/teams/{team_id}/quota", json=body, idempotent=True)
        return TeamQuota.model_validate(answer)
