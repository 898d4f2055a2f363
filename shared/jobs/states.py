"""The job state machine of DESIGN.md. A transition it does not list is refused, never applied."""

from __future__ import annotations

from shared.db.models.job import JobStatus

__all__ = [
    "ALLOWED_TRANSITIONS",
    "STAGE_NAMES",
    "STAGE_ORDER",
    "STAGE_STATUS",
    "TERMINAL",
    "JobStatus",
    "can_transition",
]


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

# The working stages in order, each named by the status a job holds while it runs.
STAGE_ORDER: tuple[JobStatus, ...] = (
    JobStatus.VALIDATING,
    JobStatus.TRAINING,
    JobStatus.EVALUATING,
    JobStatus.EXPORTING,
    JobStatus.PUBLISHING,
)

# Stage name (as in task names and error.stage) for each working status.
STAGE_NAMES: dict[JobStatus, str] = {
    JobStatus.VALIDATING: "validate",
    JobStatus.TRAINING: "train",
    JobStatus.EVALUATING: "evaluate",
    JobStatus.EXPORTING: "export",
    JobStatus.PUBLISHING: "publish",
}
# And back: the status a job holds while each stage runs.
STAGE_STATUS: dict[str, JobStatus] = {name: status for status, name in STAGE_NAMES.items()}


_FORWARD: dict[JobStatus, tuple[JobStatus, ...]] = {
    JobStatus.QUEUED: (JobStatus.VALIDATING,),
    JobStatus.VALIDATING: (JobStatus.TRAINING,),
    # Stages after training run only when the spec asks for them, so each may be skipped.
    JobStatus.TRAINING: (
        JobStatus.EVALUATING,
        JobStatus.EXPORTING,
        JobStatus.PUBLISHING,
        JobStatus.SUCCEEDED,
    ),
    JobStatus.EVALUATING: (JobStatus.EXPORTING, JobStatus.PUBLISHING, JobStatus.SUCCEEDED),
    JobStatus.EXPORTING: (JobStatus.PUBLISHING, JobStatus.SUCCEEDED),
    JobStatus.PUBLISHING: (JobStatus.SUCCEEDED,),
    JobStatus.CANCELLING: (JobStatus.CANCELLED, JobStatus.FAILED),
}


def _allowed() -> dict[JobStatus, frozenset[JobStatus]]:
    allowed = {status: set(_FORWARD.get(status, ())) for status in JobStatus}
    for status in (JobStatus.QUEUED, *STAGE_ORDER):
        allowed[status].update({JobStatus.FAILED, JobStatus.CANCELLING})
    return {status: frozenset(targets) for status, targets in allowed.items()}


ALLOWED_TRANSITIONS = _allowed()


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    return target in ALLOWED_TRANSITIONS[current]
