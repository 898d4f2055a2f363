"""The rules of jobs: what may be submitted, which transitions are allowed, what a cancel does,
and how a stage starts, finishes and fails.

Routes, the run handle and studies call this; it only flushes. Whoever opened the session commits;
what must follow the commit (send the next stage, tell a study, deliver the team's webhooks) goes on
the session's outbox and runs after it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from shared.base_models.repository import BaseModelRepository
from shared.datasets.repository import DatasetRepository
from shared.db.base import utcnow
from shared.db.models import BaseModelEntry, Checkpoint, Dataset, Job, JobEvent, JobMetricPoint
from shared.db.outbox import AdvanceStudy, DispatchJobs, EnqueueStage, outbox
from shared.db.pagination import decode_cursor, encode_cursor
from shared.errors import IllegalTransition, InvalidInput, NotFound
from shared.jobs import memory_watch
from shared.jobs.memory_fit import check_fits_a_worker
from shared.jobs.repository import JobRepository
from shared.jobs.results import StageResult, TrainResult
from shared.jobs.spec import DATASET_TASK_OF, JobSpec
from shared.jobs.states import STAGE_NAMES, STAGE_STATUS, TERMINAL, JobStatus, can_transition
from shared.observability import JOB_TRANSITIONS
from shared.pipeline.architectures import default_lora_targets
from shared.webhooks.service import WebhookService

# What `start_stage` decided: run the stage body, or leave the job alone.
StartDecision = Literal["run", "skip"]

DEFAULT_VALIDATION_SPLIT = 0.1


@dataclass(frozen=True)
class CheckedSpec:
    """A spec that may be submitted, with its defaults resolved, and the rows it names."""

    spec: JobSpec
    base_model: BaseModelEntry
    train: Dataset
    validation: Dataset | None
    test: Dataset | None


@dataclass(frozen=True)
class SubmitOutcome:
    job: Job
    created: bool  # False when an Idempotency-Key matched an earlier submission


class JobService:
    def __init__(self, session: Session, gpu_workers: bool = False) -> None:
        """`gpu_workers`: whether this deployment has GPU workers (GPU-only methods are refused without)."""
        self.session = session
        self.gpu_workers = gpu_workers
        self.jobs = JobRepository(session)
        self.datasets = DatasetRepository(session)
        self.base_models = BaseModelRepository(session)

    # Submission -----------------------------------------------------------------------------------

    def submit(
        self,
        team_id: uuid.UUID,
        spec: JobSpec,
        name: str | None = None,
        idempotency_key: str | None = None,
        study_id: uuid.UUID | None = None,
    ) -> SubmitOutcome:
        """Store the job `queued`; the dispatcher admits it when the team's quotas and a free worker
        slot allow (a pass runs after this commit), and only then is its first task sent."""
        if idempotency_key is not None:
            existing = self.jobs.get_by_idempotency_key(team_id, idempotency_key)
            if existing is not None:
                return SubmitOutcome(job=existing, created=False)

        checked = self.check_spec(team_id, spec)
        spec, base_model = checked.spec, checked.base_model
        train, validation, test = checked.train, checked.validation, checked.test

        job = Job(
            # The id is known before the insert, so that the job and its first event go to the
            # database in one flush.
            id=uuid.uuid4(),
            team_id=team_id,
            base_model_id=base_model.id,
            train_dataset_id=train.id,
            validation_dataset_id=validation.id if validation else None,
            test_dataset_id=test.id if test else None,
            study_id=study_id,
            name=name,
            status=JobStatus.QUEUED,
            idempotency_key=idempotency_key,
            spec=spec.model_dump(mode="json"),
            progress={},
            latest_metrics={},
            result={},
            completed_stages=[],
            request_id=_request_id(),
        )
        self.jobs.add_with_event(
            job, self._new_event(job, "created", to_status=JobStatus.QUEUED, message="job submitted")
        )
        outbox(self.session).add(DispatchJobs())
        return SubmitOutcome(job=job, created=True)

    def _dataset(self, team_id: uuid.UUID, dataset_id: uuid.UUID, field: str, task: str) -> Dataset:
        dataset = self.datasets.get_for_team(team_id, dataset_id)
        if dataset is None:
            raise _field_error(field, f"dataset {dataset_id} not found")
        wanted = DATASET_TASK_OF[task]
        if dataset.task != wanted:
            raise _field_error(
                field,
                f"dataset {dataset_id} is a '{dataset.task}' dataset; a {task} job trains on '{wanted}' data",
            )
        return dataset

    def _check_method(self, spec: JobSpec, model_type: str | None) -> None:
        """What can be known before any GPU time: GPU-only methods, LoRA's target modules."""
        if spec.method == "qlora" and not self.gpu_workers:
            raise _field_error(
                "method", "qlora needs a CUDA GPU and this deployment has no GPU workers; use lora instead"
            )
        uses_lora = spec.method in ("lora", "qlora")
        named = bool(spec.hyperparameters.lora.target_modules)
        if uses_lora and not named and model_type is not None and default_lora_targets(model_type) is None:
            raise _field_error(
                "hyperparameters.lora.target_modules",
                f"LoRA has no default target modules for model type '{model_type}' (base model "
                f"'{spec.base_model}'); name its attention projections in hyperparameters.lora.target_modules",
            )

    def _check_teacher(self, team_id: uuid.UUID, teacher_job_id: uuid.UUID, train: Dataset) -> None:
        """A distillation teacher is a finished classification job of the team, with a model whose
        labels cover the train rows'."""
        teacher = self.jobs.get_for_team(team_id, teacher_job_id)
        field = "distillation.teacher_job_id"
        if teacher is None:
            raise _field_error(field, f"teacher job {teacher_job_id} not found")
        trained = teacher.result.get(TrainResult.key) or {}
        if JobStatus(teacher.status) != JobStatus.SUCCEEDED or not trained.get("model_prefix"):
            raise _field_error(field, f"teacher job {teacher_job_id} has not finished with a trained model")
        teacher_spec = JobSpec.model_validate(teacher.spec)
        if teacher_spec.task != "text-classification":
            raise _field_error(field, f"teacher job {teacher_job_id} is not a text-classification job")
        teacher_labels = set(((teacher.result.get("validation") or {}).get("labels")) or [])
        missing = sorted(set(train.labels) - teacher_labels)
        if teacher_labels and missing:
            raise _field_error(field, f"the teacher never learned labels {missing} of the train dataset")

    def check_spec(self, team_id: uuid.UUID, spec: JobSpec) -> CheckedSpec:
        """Everything a submission is refused for before it is stored (a dry run answers the same
        errors): the base model, the method, the datasets and their labels, the split. Returns the
        spec with its defaults resolved and the rows it names."""
        base_model = self.base_models.get_by_name(spec.base_model)
        if base_model is None:
            raise _field_error("base_model", f"base model '{spec.base_model}' is not in the catalog")
        if base_model.task_family != spec.task:
            raise _field_error(
                "base_model",
                f"base model '{spec.base_model}' is for '{base_model.task_family}', not '{spec.task}'",
            )
        self._check_method(spec, base_model.model_type)
        check_fits_a_worker(self.session, spec, base_model)
        train = self._dataset(team_id, spec.train_dataset_id, "train_dataset_id", spec.task)
        validation = (
            self._dataset(team_id, spec.validation_dataset_id, "validation_dataset_id", spec.task)
            if spec.validation_dataset_id
            else None
        )
        test = (
            self._dataset(team_id, spec.test_dataset_id, "test_dataset_id", spec.task)
            if spec.test_dataset_id
            else None
        )
        if spec.distillation is not None:
            self._check_teacher(team_id, spec.distillation.teacher_job_id, train)
        train_labels = set(train.labels)
        for field, dataset in (("validation_dataset_id", validation), ("test_dataset_id", test)):
            if dataset is None:
                continue
            unknown = sorted(set(dataset.labels) - train_labels)
            if unknown:
                raise _field_error(
                    field,
                    f"labels {unknown} appear in dataset {dataset.id} but not in the train dataset; "
                    "the model could never predict them",
                )
        if spec.validation_dataset_id is None and spec.validation_split is None:
            spec = spec.model_copy(update={"validation_split": DEFAULT_VALIDATION_SPLIT})
        if spec.validation_split is not None:
            held_out = int(train.row_count * spec.validation_split)
            if held_out < 1 or train.row_count - held_out < 2:
                raise _field_error(
                    "validation_split",
                    f"a split of {spec.validation_split} of {train.row_count} rows leaves no validation or train rows",
                )
        return CheckedSpec(spec=spec, base_model=base_model, train=train, validation=validation, test=test)

    # Reads ----------------------------------------------------------------------------------------

    def get(self, team_id: uuid.UUID, job_id: uuid.UUID) -> Job:
        job = self.jobs.get_for_team(team_id, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        return job

    def list(
        self, team_id: uuid.UUID, statuses: list[JobStatus] | None, cursor: str | None, limit: int
    ) -> tuple[list[sa.Row[Any]], str | None]:
        """A page of the team's jobs (plain rows with the job's columns) and the next page's cursor."""
        before = decode_cursor(cursor) if cursor else None
        jobs = self.jobs.list_for_team(team_id, statuses=statuses, before=before, limit=limit + 1)
        last = jobs[limit - 1] if len(jobs) > limit else None
        return jobs[:limit], encode_cursor(last.created_at, last.id) if last else None

    # Transitions ----------------------------------------------------------------------------------

    def transition(
        self, job: Job, target: JobStatus, message: str | None = None, data: dict[str, Any] | None = None
    ) -> Job:
        current = JobStatus(job.status)
        if not can_transition(current, target):
            raise IllegalTransition(
                f"job {job.id} cannot go from '{current}' to '{target}'",
                details={"from": current.value, "to": target.value},
            )
        job.status = target
        now = utcnow()
        if target in STAGE_NAMES and job.started_at is None:
            job.started_at = now
        if target in TERMINAL:
            job.finished_at = now
            job.running_stage = None
            if job.admitted_at is not None:
                # The slot it held is free: what the team's GPU-hours count, and a pass to refill it.
                job.worker_seconds = max(0.0, (now - job.admitted_at).total_seconds())
                outbox(self.session).add(DispatchJobs())
            if job.study_id is not None:
                outbox(self.session).add(AdvanceStudy(job.study_id))
            WebhookService(self.session).job_finished(job)
        self._event(job, "transition", from_status=current, to_status=target, message=message, data=data)
        JOB_TRANSITIONS.labels(from_status=current.value, to_status=target.value).inc()
        return job

    def fail(self, job: Job, code: str, message: str, stage: str | None) -> Job:
        job.error_code = code
        job.error_message = message
        job.error_stage = stage
        return self.transition(job, JobStatus.FAILED, message=message, data={"code": code, "stage": stage})

    def request_cancel(self, team_id: uuid.UUID, job_id: uuid.UUID) -> Job:
        # Locked: two cancels racing (two API processes) are taken one after the other, and the
        # second sees what the first did (a finished job: 409) instead of repeating it.
        job = self.jobs.get_for_team(team_id, job_id, for_update=True)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        status = JobStatus(job.status)
        if status in TERMINAL:
            raise IllegalTransition(
                f"job {job_id} has already finished ({status.value}); nothing to cancel",
                details={"status": status.value},
            )
        if status == JobStatus.CANCELLING:
            return job
        job.cancel_requested_at = utcnow()
        self.transition(job, JobStatus.CANCELLING, message="cancel requested")
        if status == JobStatus.QUEUED:
            # No worker holds a queued job: the task that picks it up later sees the state and skips.
            self.transition(job, JobStatus.CANCELLED, message="cancelled before it started")
        return job

    # Stages (the run handle calls these, one short transaction each) -----------------------------

    def start_stage(
        self,
        job: Job,
        stage: str,
        task_id: str | None,
        heartbeat_timeout: timedelta | None = None,
        max_attempts: int | None = None,
        watch: dict[str, Any] | None = None,
    ) -> StartDecision:
        """Take the job for `stage`, whatever happened before: a first run, a re-run after a worker
        died or a transient error, a cancel that came first, or work already done.

        A second task for a stage that another task holds with a heartbeat younger than
        `heartbeat_timeout` is a duplicate (the reaper re-sent a stage whose first message turned
        up after all) and skips. The same task delivered again is a re-run: the broker gives a task
        back only when the worker that had it died.

        Every re-run counts an attempt however it came back (a redelivery after its process was
        killed, a re-send by the reaper); past `max_attempts` the job fails instead, with
        `out_of_memory` when the kernel killed the stage for memory (`shared.jobs.memory_watch`,
        from `watch`: where this run starts and its cgroup's OOM-kill count) and `worker_lost`
        otherwise. A stage handed back by a worker shutting down is not a failed attempt."""
        status = STAGE_STATUS[stage]
        current = JobStatus(job.status)
        if current in TERMINAL:
            return "skip"
        if current == JobStatus.CANCELLING:
            self.transition(job, JobStatus.CANCELLED, message=f"cancelled before {stage} started")
            return "skip"
        if current == JobStatus.QUEUED and stage == "validate":
            if job.admitted_at is None:
                # Not admitted (a stray or duplicate task): the dispatcher sends its task in turn.
                return "skip"
            self.transition(job, status, message="validation started")
        elif current != status:
            # A duplicate task for a stage already done, or one sent before the job moved on.
            return "skip"
        if job.running_stage == stage and self._held_by_another_task(job, task_id, heartbeat_timeout):
            return "skip"
        previous = dict(job.memory_watch or {})
        now = dict(watch or {})
        if job.running_stage == stage:
            # The same stage again: its earlier run died or gave the task back. It resumes from
            # what it left behind.
            job.attempt += 1
            oom_killed = watch is not None and memory_watch.oom_killed_since(previous, now)
            # Celery's retry count grew: the last run gave the task back for a transient error
            # (counted against `transient_retry_limit`), it did not die.
            retried = int(now.get("retries", 0)) > int(previous.get("retries", 0))
            failed = self.failed_runs(job, retried)
            oom_kills = self.oom_kills_seen(job) + int(oom_killed)
            if max_attempts is not None and failed >= max_attempts:
                code, message = memory_watch.gave_up_message(
                    stage, failed, previous, job.peak_memory_bytes, oom_kills
                )
                self.fail_stage(job, stage, code, message)
                return "skip"
            how = " after an OOM kill" if oom_killed else ""
            self.log(
                job,
                f"{stage} restarted (attempt {job.attempt}){how}",
                data={"attempt": job.attempt, **({"oom_killed": True} if oom_killed else {})},
            )
            now.update(failed_runs=failed, oom_kills_seen=oom_kills)
            # The estimate stays until the new run makes its own.
            if "estimate_bytes" in previous:
                now.setdefault("estimate_bytes", previous["estimate_bytes"])
        else:
            job.attempt = max(job.attempt, 1)
        job.memory_watch = {**now, "stage": stage}
        job.running_stage = stage
        job.task_id = task_id
        job.heartbeat_at = utcnow()
        return "run"

    @staticmethod
    def failed_runs(job: Job, retried: bool = False) -> int:
        """Runs of the running stage that ended without a word, its latest included unless it
        handed the job back (a worker shutting down is no failure) or was retried for a transient
        error."""
        watch = job.memory_watch or {}
        return int(watch.get("failed_runs", 0)) + (0 if watch.get("handed_back") or retried else 1)

    @staticmethod
    def oom_kills_seen(job: Job) -> int:
        return int((job.memory_watch or {}).get("oom_kills_seen", 0))

    @staticmethod
    def _held_by_another_task(job: Job, task_id: str | None, heartbeat_timeout: timedelta | None) -> bool:
        if heartbeat_timeout is None or task_id is None or job.task_id in (None, task_id):
            return False
        return job.heartbeat_at is not None and utcnow() - job.heartbeat_at < heartbeat_timeout

    def hand_back_stage(self, job: Job, stage: str, message: str, data: dict[str, Any]) -> None:
        """A worker shutting down stopped `stage` at a safe point: send it again for another worker
        (it resumes from what this run saved). Not a failure; a cancel that came meanwhile wins."""
        if job.running_stage != stage or JobStatus(job.status) in TERMINAL:
            return
        if JobStatus(job.status) == JobStatus.CANCELLING:
            self.transition(job, JobStatus.CANCELLED, message=f"cancelled during {stage}")
            return
        # The stage stays taken (its re-run counts as a restart, not as a failed attempt) but no
        # task owns it any more.
        job.task_id = None
        job.memory_watch = {**(job.memory_watch or {}), "handed_back": True}
        self.log(job, message, data=data)
        outbox(self.session).add(EnqueueStage(job.id, stage, team_id=job.team_id))

    def complete_stage(self, job: Job, stage: str, result: StageResult | None, cancelled: bool) -> str | None:
        """Store the stage's result and move on: the next stage (returned, and enqueued after the
        commit), success, or cancelled."""
        if result is not None:
            self.store_result(job, result)
        job.completed_stages = [*(name for name in job.completed_stages if name != stage), stage]
        job.running_stage = None
        current = JobStatus(job.status)
        if cancelled or current == JobStatus.CANCELLING:
            if current != JobStatus.CANCELLING:
                self.transition(job, JobStatus.CANCELLING, message="stopped by cancel")
            self.transition(job, JobStatus.CANCELLED, message=f"cancelled during {stage}")
            return None
        if current != STAGE_STATUS[stage]:
            self.log(job, f"{stage} finished but the job had moved on to {current.value}")
            return None
        stages = JobSpec.model_validate(job.spec).stages()
        position = stages.index(stage)
        if position + 1 < len(stages):
            next_stage = stages[position + 1]
            self.transition(job, STAGE_STATUS[next_stage], message=f"{stage} done")
            outbox(self.session).add(EnqueueStage(job.id, next_stage, team_id=job.team_id))
            return next_stage
        self.transition(job, JobStatus.SUCCEEDED, message=f"{stage} done; job succeeded")
        return None

    def fail_stage(self, job: Job, stage: str, code: str, message: str) -> None:
        """Record a stage failure; a job being cancelled ends cancelled instead."""
        if JobStatus(job.status) in TERMINAL:
            return
        job.running_stage = None
        if JobStatus(job.status) == JobStatus.CANCELLING:
            self.transition(job, JobStatus.CANCELLED, message=f"cancelled; {stage} had failed: {message}")
            return
        self.fail(job, code, message, stage)

    def store_result(self, job: Job, result: StageResult) -> None:
        # Fields left unset are left out, so the document shows what the stage actually produced.
        job.result = {**job.result, result.key: result.model_dump(mode="json", exclude_none=True)}

    def heartbeat(self, job: Job, peak_memory_bytes: int | None = None) -> None:
        job.heartbeat_at = utcnow()
        if peak_memory_bytes is not None:
            self.record_peak_memory(job, peak_memory_bytes)

    def record_peak_memory(self, job: Job, peak_memory_bytes: int) -> None:
        job.peak_memory_bytes = max(job.peak_memory_bytes or 0, peak_memory_bytes)

    def note_memory_watch(self, job: Job, figures: dict[str, Any]) -> None:
        """Add the running stage's own figures (its estimate) to what its watch knows."""
        job.memory_watch = {**(job.memory_watch or {}), **figures}

    def resolve_spec(self, job: Job, spec: JobSpec, message: str, data: dict[str, Any]) -> None:
        """Store the spec as it runs (a batch of "auto" resolved), with an event saying what changed."""
        job.spec = spec.model_dump(mode="json")
        self.log(job, message, data=data)

    # Progress, metrics and checkpoints (written by workers) ---------------------------------------

    def record_progress(self, job: Job, progress: dict[str, Any]) -> None:
        job.progress = progress
        job.heartbeat_at = utcnow()
        self._event(job, "progress", data=progress)

    def record_metrics(self, job: Job, step: int, epoch: float | None, metrics: dict[str, float]) -> None:
        points = [
            JobMetricPoint(job_id=job.id, name=name, value=float(value), step=step, epoch=epoch)
            for name, value in metrics.items()
        ]
        self.jobs.add_metric_points(points)
        job.latest_metrics = {**job.latest_metrics, **{name: float(value) for name, value in metrics.items()}}

    def record_checkpoint(
        self,
        job: Job,
        step: int,
        epoch: float | None,
        object_prefix: str,
        size_bytes: int,
        metrics: dict[str, Any],
    ) -> Checkpoint:
        existing = self.jobs.get_checkpoint(job.id, step)
        if existing is not None:  # the same checkpoint uploaded again by a re-run stage
            return existing
        checkpoint = self.jobs.add_checkpoint(
            Checkpoint(
                job_id=job.id,
                step=step,
                epoch=epoch,
                object_prefix=object_prefix,
                size_bytes=size_bytes,
                metrics=metrics,
            )
        )
        self._event(
            job,
            "checkpoint",
            message=f"checkpoint at step {step}",
            data={"step": step, "prefix": object_prefix},
        )
        return checkpoint

    def log(self, job: Job, message: str, data: dict[str, Any] | None = None) -> None:
        self._event(job, "log", message=message, data=data)

    def _event(
        self,
        job: Job,
        event_type: str,
        *,
        from_status: JobStatus | None = None,
        to_status: JobStatus | None = None,
        message: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> JobEvent:
        return self.jobs.add_event(
            self._new_event(
                job, event_type, from_status=from_status, to_status=to_status, message=message, data=data
            )
        )

    @staticmethod
    def _new_event(
        job: Job,
        event_type: str,
        *,
        from_status: JobStatus | None = None,
        to_status: JobStatus | None = None,
        message: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> JobEvent:
        return JobEvent(
            job_id=job.id,
            type=event_type,
            from_status=from_status.value if from_status else None,
            to_status=to_status.value if to_status else None,
            message=message,
            data=data or {},
        )


def _field_error(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, details={"field": field})


def _request_id() -> str | None:
    """The API request this code serves, as the request middleware bound it to the log context."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return str(value)[:100] if value else None
