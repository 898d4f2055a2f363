"""`client.jobs`: submit (or dry-run), list (every page), get, cancel, events, `watch` over SSE, metrics, files."""

from __future__ import annotations

import builtins
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from temper_client._http import HttpSession, iter_sse
from temper_client.errors import ApiUnreachable
from temper_client.types import (
    ArtifactFile,
    Checkpoint,
    EventPage,
    Job,
    JobDryRun,
    JobEvent,
    JobPage,
    MetricSeries,
)

# Consecutive failed reconnects of `watch` before it gives up (each waits the retry backoff).
MAX_WATCH_RECONNECTS = 5


class Jobs:
    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def create(
        self, spec: Mapping[str, Any], *, name: str | None = None, idempotency_key: str | None = None
    ) -> Job:
        """Submit a job (the spec is the API's `JobCreate`; see the OpenAPI document).

        The submission carries an Idempotency-Key (a fresh one unless given), so that a retry after
        a lost answer returns the same job instead of starting a second one.
        """
        body = dict(spec)
        if name is not None:
            body["name"] = name
        key = idempotency_key or str(uuid.uuid4())
        data = self._http.json(
            "POST", "/v1/jobs", json=body, headers={"Idempotency-Key": key}, idempotent=True
        )
        return Job.model_validate(data)

    def dry_run(self, spec: Mapping[str, Any]) -> JobDryRun:
        """Check a spec and see the job as it would run (token counts, steps, estimated duration and
        peak memory with their basis, the tokenizer fit and its warnings) without submitting it.

        A bad spec raises the error a submission would; nothing is stored or started.
        """
        data = self._http.json(
            "POST", "/v1/jobs", json=dict(spec), params={"dry_run": "true"}, idempotent=True
        )
        return JobDryRun.model_validate(data)

    def list(self, *, status: list[str] | str | None = None, page_size: int = 50) -> Iterator[Job]:
        """Every job of the team, newest first, fetched page by page as the iteration goes."""
        cursor: str | None = None
        while True:
            page = self.list_page(status=status, cursor=cursor, limit=page_size)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def list_page(
        self, *, status: builtins.list[str] | str | None = None, cursor: str | None = None, limit: int = 50
    ) -> JobPage:
        params = {"status": [status] if isinstance(status, str) else status, "cursor": cursor, "limit": limit}
        return JobPage.model_validate(self._http.json("GET", "/v1/jobs", params=params))

    def get(self, job_id: uuid.UUID | str) -> Job:
        return Job.model_validate(self._http.json("GET", f"/v1/jobs/{job_id}"))

    def cancel(self, job_id: uuid.UUID | str) -> Job:
        """Ask the job to stop (cooperative: it saves and stops); `Conflict` once it has finished."""
        return Job.model_validate(self._http.json("POST", f"/v1/jobs/{job_id}/cancel", idempotent=True))

    def events(
        self,
        job_id: uuid.UUID | str,
        *,
        after: int = 0,
        type: str | None = None,
        page_size: int = 100,
    ) -> Iterator[JobEvent]:
        """The job's events so far, oldest first, every page (`type` filters: transition, progress, ...)."""
        while True:
            page = EventPage.model_validate(
                self._http.json(
                    "GET",
                    f"/v1/jobs/{job_id}/events",
                    params={"after": after, "limit": page_size, "type": type},
                )
            )
            yield from page.items
            if page.next_after is None:
                return
            after = page.next_after

    def watch(self, job_id: uuid.UUID | str, *, after: int = 0) -> Iterator[JobEvent]:
        """Every event of the job as it is written, until the job finishes (server-sent events).

        A dropped stream is opened again from the last event received, so no event is lost or
        repeated; it gives up with `ApiUnreachable` after several failed reconnects in a row.
        """
        last_id = after
        failures = 0
        while True:
            try:
                headers = {"Last-Event-ID": str(last_id)} if last_id else None
                with self._http.stream(
                    "GET",
                    f"/v1/jobs/{job_id}/events/stream",
                    params={"after": last_id},
                    headers=headers,
                    timeout=httpx.Timeout(60.0, connect=5.0),
                ) as response:
                    for message in iter_sse(response):
                        if message.event == "end":
                            return
                        event = JobEvent.model_validate(json.loads(message.data))
                        last_id = event.id
                        failures = 0
                        yield event
                reason = "the event stream closed before the job finished"
            except (httpx.TransportError, ApiUnreachable) as exc:
                reason = str(exc) or type(exc).__name__
            failures += 1
            if failures > MAX_WATCH_RECONNECTS:
                raise ApiUnreachable(self._http.base_url, f"lost the event stream of job {job_id}: {reason}")
            self._http.sleep(self._http.retry.backoff(failures - 1))

    def wait(self, job_id: uuid.UUID | str) -> Job:
        """Follow the job's event stream until it finishes; return the finished job."""
        for _ in self.watch(job_id):
            pass
        return self.get(job_id)

    def metrics(
        self, job_id: uuid.UUID | str, *, names: builtins.list[str] | None = None
    ) -> builtins.list[MetricSeries]:
        data = self._http.json("GET", f"/v1/jobs/{job_id}/metrics", params={"name": names})
        return [MetricSeries.model_validate(series) for series in data]

    def checkpoints(self, job_id: uuid.UUID | str) -> builtins.list[Checkpoint]:
        data = self._http.json("GET", f"/v1/jobs/{job_id}/checkpoints")
        return [Checkpoint.model_validate(checkpoint) for checkpoint in data]

    def artifacts(self, job_id: uuid.UUID | str) -> builtins.list[ArtifactFile]:
        """The job's outputs other than checkpoints: model, adapter, reports, exports."""
        data = self._http.json("GET", f"/v1/jobs/{job_id}/artifacts")
        return [ArtifactFile.model_validate(file) for file in data]

    def evaluation(self, job_id: uuid.UUID | str) -> dict[str, Any]:
        """The evaluation report (metrics, per class, calibration, baseline, gate); `NotFound` before it exists."""
        report: dict[str, Any] = self._http.json("GET", f"/v1/jobs/{job_id}/evaluation")
        return report

    def evaluation_html(self, job_id: uuid.UUID | str) -> str:
        """The evaluation report as one self-contained HTML page."""
        return self._http.request("GET", f"/v1/jobs/{job_id}/evaluation.html").text

    def download(self, job_id: uuid.UUID | str, path: str, destination: str | os.PathLike[str]) -> Path:
        """Stream one of the job's files (a path from `artifacts` or a checkpoint) to `destination`."""
        target = Path(destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        with (
            self._http.stream("GET", f"/v1/jobs/{job_id}/files/{path}") as response,
            partial.open("wb") as out,
        ):
            for chunk in response.iter_bytes():
                out.write(chunk)
        partial.replace(target)
        return target
