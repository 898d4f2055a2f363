"""The events a team can subscribe to, and what each delivery says about its job or study.

A job that ends `failed` with error code `gate_failed` (its evaluation gate said no) is the event
`job.gate_failed`, not `job.failed`: subscribe to both to hear of every failed job.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.db.models import Job, Study

JOB_EVENTS = ("job.succeeded", "job.failed", "job.cancelled", "job.gate_failed")
STUDY_EVENTS = ("study.succeeded", "study.failed", "study.cancelled")
EVENT_TYPES: tuple[str, ...] = (*JOB_EVENTS, *STUDY_EVENTS)
# Sent only by "send a test event", whatever an endpoint subscribes to.
TEST_EVENT = "webhook.test"
GATE_FAILED = "gate_failed"


def job_event_type(job: Job) -> str | None:
    """The event a job in its current (terminal) status is; None for a status that is no event."""
    status = str(job.status)
    if status == "failed" and job.error_code == GATE_FAILED:
        return "job.gate_failed"
    event = f"job.{status}"
    return event if event in JOB_EVENTS else None


def study_event_type(study: Study) -> str | None:
    event = f"study.{study.status}"
    return event if event in STUDY_EVENTS else None


def job_data(job: Job) -> dict[str, Any]:
    error = (
        {"code": job.error_code, "message": job.error_message, "stage": job.error_stage}
        if job.error_code
        else None
    )
    return {
        "job": {
            "id": str(job.id),
            "name": job.name,
            "status": str(job.status),
            "base_model": job.spec.get("base_model"),
            "task": job.spec.get("task"),
            "study_id": str(job.study_id) if job.study_id else None,
            "error": error,
            "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at),
        }
    }


def study_data(study: Study) -> dict[str, Any]:
    ranking = (study.result or {}).get("ranking") or []
    return {
        "study": {
            "id": str(study.id),
            "name": study.name,
            "status": study.status,
            "metric": study.metric,
            "direction": study.direction,
            "best": ranking[0] if ranking else None,
        }
    }


def test_data(endpoint_id: uuid.UUID) -> dict[str, Any]:
    return {"endpoint_id": str(endpoint_id), "message": "a test event sent on request"}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
