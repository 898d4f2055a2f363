"""`client.studies`: ablation studies (a base spec and its variants, each a job), ranked by a metric."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from temper_client._http import HttpSession
from temper_client.types import Study, StudyPage, StudySummary


class Studies:
    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def create(self, spec: Mapping[str, Any]) -> Study:
        """Start a study (the spec is the API's `StudyCreate`: base_spec, variants, metric, ...)."""
        return Study.model_validate(self._http.json("POST", "/v1/studies", json=dict(spec)))

    def list(self, *, page_size: int = 50) -> Iterator[StudySummary]:
        """Every study of the team, newest first, fetched page by page as the iteration goes."""
        cursor: str | None = None
        while True:
            page = self.list_page(cursor=cursor, limit=page_size)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def list_page(self, *, cursor: str | None = None, limit: int = 50) -> StudyPage:
        data = self._http.json("GET", "/v1/studies", params={"cursor": cursor, "limit": limit})
        return StudyPage.model_validate(data)

    def get(self, study_id: uuid.UUID | str) -> Study:
        return Study.model_validate(self._http.json("GET", f"/v1/studies/{study_id}"))

    def cancel(self, study_id: uuid.UUID | str) -> Study:
        """Cancel the study's unfinished variants."""
        return Study.model_validate(
            self._http.json("POST", f"/v1/studies/{study_id}/cancel", idempotent=True)
        )
