"""What earlier jobs of a base model measured, for estimates: the queries, and their rows read into
`EarlierRun`s (throughput from the train result and its progress reports, stage wall times from the
transition events)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.db.models import Job, JobEvent
from shared.jobs.estimate import EarlierRun, WorkerClass, method_units
from shared.jobs.results import TrainResult, ValidationResult
from shared.jobs.spec import JobSpec
from shared.jobs.states import STAGE_NAMES, JobStatus

# Earlier jobs read per estimate, newest first; enough to find a few of the same method and class.
MAX_EARLIER_JOBS = 50


class JobHistoryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def succeeded_with_base_model(self, base_model_id: uuid.UUID, limit: int = MAX_EARLIER_JOBS) -> list[Job]:
        """Succeeded jobs of any team on this base model, newest first (throughput is the machine's,
        not the team's)."""
        query = (
            sa.select(Job)
            .where(Job.base_model_id == base_model_id, Job.status == JobStatus.SUCCEEDED)
            .order_by(Job.finished_at.desc(), Job.id)
            .limit(limit)
        )
        return list(self.session.scalars(query))

    def timeline(self, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[JobEvent]]:
        """Each job's transition and progress events, oldest first."""
        if not job_ids:
            return {}
        query = (
            sa.select(JobEvent)
            .where(JobEvent.job_id.in_(job_ids), JobEvent.type.in_(["transition", "progress"]))
            .order_by(JobEvent.id)
        )
        events: dict[uuid.UUID, list[JobEvent]] = defaultdict(list)
        for event in self.session.scalars(query):
            events[event.job_id].append(event)
        return events

    def earlier_runs(self, base_model_id: uuid.UUID, layers: int) -> list[EarlierRun]:
        """The measurements of this base model's succeeded jobs that trained in one go, newest first
        (`layers`, the model's, weighs what method "freeze" computes)."""
        jobs = self.succeeded_with_base_model(base_model_id)
        timelines = self.timeline([job.id for job in jobs])
        runs = []
        for job in jobs:
            run = _earlier_run(job, timelines.get(job.id, []), layers)
            if run is not None:
                runs.append(run)
        return runs


def worker_class_of(train: TrainResult) -> WorkerClass:
    """Where a train stage ran; results older than `device` tell it by their precision."""
    if train.device is not None:
        return "gpu" if train.device.startswith("cuda") else "cpu"
    return "cpu" if train.precision == "fp32" else "gpu"


def stage_seconds(events: list[JobEvent]) -> dict[str, float]:
    """Wall seconds of each stage: from the transition into its status to the one out of it."""
    entered: dict[str, datetime] = {}
    seconds: dict[str, float] = {}
    for event in events:
        if event.type != "transition":
            continue
        leaving = STAGE_NAMES.get(JobStatus(event.from_status)) if event.from_status else None
        if leaving is not None and leaving in entered:
            seconds[leaving] = (event.created_at - entered[leaving]).total_seconds()
        arriving = STAGE_NAMES.get(JobStatus(event.to_status)) if event.to_status else None
        if arriving is not None:
            entered[arriving] = event.created_at
    return seconds


def steady_throughput(events: list[JobEvent], train: TrainResult) -> tuple[float | None, float]:
    """Tokens per second between the first and the last progress report of the train loop, and the
    rest of its runtime (start-up before the first report, evaluation after the last).

    The first report comes after `logging_steps` steps, so the rate leaves out the slow first
    steps that a short run would otherwise be judged by.
    """
    reports = [
        (event.created_at, int(event.data["step"]))
        for event in events
        if event.type == "progress" and isinstance(event.data.get("step"), int)
    ]
    if len(reports) < 2 or not train.train_tokens_per_second or train.global_step <= 0:
        return None, 0.0
    (first_at, first_step), (last_at, last_step) = reports[0], reports[-1]
    seconds = (last_at - first_at).total_seconds()
    if last_step <= first_step or seconds <= 0:
        return None, 0.0
    tokens = train.train_tokens_per_second * train.train_runtime_s
    steady = (last_step - first_step) * (tokens / train.global_step) / seconds
    return steady, max(train.train_runtime_s - tokens / steady, 0.0)


def _earlier_run(job: Job, events: list[JobEvent], layers: int) -> EarlierRun | None:
    stored_train = job.result.get(TrainResult.key)
    if stored_train is None:
        return None
    train = TrainResult.model_validate(stored_train)
    # A resumed run's throughput covers only its last part; a cancelled one never finished.
    if train.status != "completed" or train.resumed_from is not None or train.train_runtime_s <= 0:
        return None
    spec = JobSpec.model_validate(job.spec)
    steady, startup = steady_throughput(events, train)
    stored_validation = job.result.get(ValidationResult.key)
    validation = ValidationResult.model_validate(stored_validation) if stored_validation else None
    rows = validation.rows if validation else {}
    evaluated = (job.result.get("evaluation") or {}).get("rows")
    return EarlierRun(
        job_id=job.id,
        team_id=job.team_id,
        method=spec.method,
        worker_class=worker_class_of(train),
        finished_at=job.finished_at,
        train_runtime_s=train.train_runtime_s,
        train_samples_per_second=train.train_samples_per_second,
        train_tokens_per_second=train.train_tokens_per_second,
        units=method_units(spec.method, spec.hyperparameters, layers),
        steady_tokens_per_second=steady,
        startup_s=startup,
        rows_validated=sum(count for count in rows.values() if count) or None,
        rows_evaluated=int(evaluated) if isinstance(evaluated, int) else None,
        stage_seconds=stage_seconds(events),
    )
