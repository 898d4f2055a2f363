"""Which event a finished job or study is: a failure by the evaluation gate is `job.gate_failed`."""

from __future__ import annotations

import pytest

from shared.db.models import Job, Study
from shared.webhooks.events import job_event_type, study_event_type


@pytest.mark.parametrize(
    ("status", "error_code", "event"),
    [
        ("succeeded", None, "job.succeeded"),
        ("failed", "invalid_dataset", "job.failed"),
        ("failed", "gate_failed", "job.gate_failed"),
        ("cancelled", None, "job.cancelled"),
        ("training", None, None),
    ],
)
def test_a_job_event_is_named_by_its_status_and_a_gate_failure_by_its_code(
    status: str, error_code: str | None, event: str | None
) -> None:
    assert job_event_type(Job(status=status, error_code=error_code)) == event


def test_a_study_event_is_named_by_its_status() -> None:
    assert study_event_type(Study(status="succeeded")) == "study.succeeded"
    assert study_event_type(Study(status="running")) is None
