"""Turning rows into API responses where the shape differs from the table."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from fastapi import Request
from sqlalchemy import Row

from shared.db.models import Job
from shared.jobs.dispatch import QueuePosition
from shared.jobs.layout import COMPLETE_MARKER, JobLayout
from shared.jobs.states import STAGE_NAMES, JobStatus
from shared.settings import Settings
from shared.storage.base import ObjectStore


def present_job(job: Job | Row[Any], queue: QueuePosition | None = None) -> dict:
    """A job (an ORM object, or a row with the job's columns from a list query) as the API shows it."""
    status = JobStatus(job.status)
    stage = STAGE_NAMES.get(status) or job.error_stage
    error = (
        {"code": job.error_code, "message": job.error_message, "stage": job.error_stage}
        if job.error_code
        else None
    )
    return {
        "id": job.id,
        "name": job.name,
        "status": status.value,
        "stage": stage,
        "attempt": job.attempt,
        "completed_stages": list(job.completed_stages or []),
        "progress": job.progress or {},
        "latest_metrics": job.latest_metrics or {},
        "error": error,
        "spec": job.spec,
        "result": job.result or {},
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "cancel_requested_at": job.cancel_requested_at,
        "admitted_at": job.admitted_at,
        "peak_memory_bytes": job.peak_memory_bytes,
        "queue": asdict(queue) if queue is not None else None,
    }


def present_files(
    request: Request, store: ObjectStore, settings: Settings, job_id: uuid.UUID, prefix: str
) -> list[dict]:
    """Files under `prefix` with a download URL: presigned where the store can, else through the API."""
    layout = JobLayout(job_id)
    files = []
    for info in store.list(prefix.rstrip("/") + "/"):
        if info.key.endswith(f"/{COMPLETE_MARKER}"):
            continue
        relative = layout.relative(info.key)
        url = store.presigned_get_url(info.key, settings.presigned_url_expiry)
        if url is None:
            url = str(request.url_for("download_file", job_id=str(job_id), path=relative))
        files.append({"path": relative, "size": info.size, "download_url": url})
    return files
