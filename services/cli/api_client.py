"""A small Python client over Temper's REST API (the CLI uses it; so can notebooks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


class ApiError(Exception):
    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.status_code = status_code
        self.code = error.get("code", "http_error")
        self.details = error.get("details")
        super().__init__(f"{status_code} {self.code}: {error.get('message', body)}")


class TemperApi:
    def __init__(self, base_url: str, api_key: str | None, timeout_s: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"error": {"message": response.text}}
            raise ApiError(response.status_code, body)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # Datasets
    def upload_dataset(
        self, path: Path, name: str, task: str = "text-classification", **columns: str
    ) -> dict:
        with path.open("rb") as handle:
            return self.request(
                "POST",
                "/v1/datasets",
                files={"file": (path.name, handle)},
                data={"name": name, "task": task, **columns},
            )

    # Jobs
    def submit_job(self, spec: dict[str, Any], idempotency_key: str | None = None) -> dict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/v1/jobs", json=spec, headers=headers)

    def get_job(self, job_id: str) -> dict:
        return self.request("GET", f"/v1/jobs/{job_id}")

    def stream_events(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Job events as they happen (server-sent events), until the job finishes."""
        with self.http.stream("GET", f"/v1/jobs/{job_id}/events/stream", timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response.status_code, response.json())
            event_type = "message"
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event_type = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    yield {"event": event_type, "data": json.loads(line.removeprefix("data:").strip())}
                    event_type = "message"
