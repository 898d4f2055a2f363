"""The run handle: the one way a stage reads and writes its job.

A stage gets a `JobRun` and never a session. Every read it offers returns plain data (the typed
spec, references to the datasets and the base model, earlier stages' typed results) and every write
is one short transaction through `JobService`, committed at once so that the API and the SSE stream
see progress while the stage runs. Whatever must follow a write (the next stage's task, a study's
advance, a model load on Triton) is put on the transaction's outbox and runs after its commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy.orm import Session

from shared.base_models.repository import BaseModelRepository
from shared.data.columns import ColumnMapping
from shared.data.formats import DatasetFormat
from shared.datasets.repository import DatasetRepository
from shared.db.models import Dataset, Job
from shared.db.session import session_scope
from shared.errors import StageError
from shared.jobs import memory_watch
from shared.jobs.layout import JobLayout
from shared.jobs.repository import JobRepository
from shared.jobs.results import StageResult, TrainResult
from shared.jobs.service import JobService, StartDecision
from shared.jobs.spec import JobSpec
from shared.jobs.stages.context import StageContext
from shared.jobs.states import JobStatus
from shared.registry.service import RegistryService
from shared.teams.repository import TeamRepository

ResultT = TypeVar("ResultT", bound=StageResult)


@dataclass(frozen=True)
class DatasetRef:
    """What a stage needs of a dataset row: where its file is and how to read it."""

    id: uuid.UUID
    name: str
    task: str
    format: DatasetFormat
    sha256: str
    object_key: str
    row_count: int
    labels: list[str]
    column_mapping: ColumnMapping

    @classmethod
    def of(cls, dataset: Dataset) -> DatasetRef:
        return cls(
            id=dataset.id,
            name=dataset.name,
            task=dataset.task,
            format=cast(DatasetFormat, dataset.format),
            sha256=dataset.sha256,
            object_key=dataset.object_key,
            row_count=dataset.row_count,
            labels=list(dataset.labels),
            column_mapping=ColumnMapping.model_validate(dataset.column_mapping),
        )


@dataclass(frozen=True)
class BaseModelRef:
    name: str
    task_family: str
    source: str
    # Whether the catalog row keeps the model's shape (submit's memory check reads it).
    has_shape: bool = False


@dataclass(frozen=True)
class JobInputs:
    """The job as a stage sees it, read once when the stage starts."""

    team_id: uuid.UUID
    team_name: str
    spec: JobSpec
    base_model: BaseModelRef
    train: DatasetRef
    validation: DatasetRef | None
    test: DatasetRef | None


@dataclass(frozen=True)
class MetricPoint:
    step: int
    epoch: float | None
    name: str
    value: float


@dataclass(frozen=True)
class CheckpointRef:
    step: int
    object_prefix: str


@dataclass(frozen=True)
class BaselineModel:
    """Another model of the same team to compare with: a finished job's trained model."""

    job_id: uuid.UUID
    name: str
    model_prefix: str


class JobRun:
    """One run of one stage of one job."""

    def __init__(self, ctx: StageContext, job_id: uuid.UUID, stage: str) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self.stage = stage
        self.layout = JobLayout(job_id)
        # The Celery task this run is, once `start` took the stage.
        self.task_id: str | None = None

    # The runner's part: start, finish, fail -------------------------------------------------------
    #
    # A run whose stage another task has taken over since (the reaper gave up on this worker and
    # re-sent the stage, and the new task started) records nothing: not its heartbeat, which would
    # keep the stage looking alive, nor its end, which is the new task's to record.

    def start(self, task_id: str | None, retries: int = 0) -> StartDecision:
        """Take the job for this stage (`JobService.start_stage`). `retries`: the task's count of
        retries for transient errors, which tells a retry from a redelivery after a death."""
        with self._job(for_update=True) as (service, job):
            if job is None:
                return "skip"
            decision = service.start_stage(
                job,
                self.stage,
                task_id,
                self.ctx.settings.heartbeat_timeout,
                max_attempts=self.ctx.settings.max_stage_attempts,
                watch={**memory_watch.snapshot(), "retries": retries},
            )
        self.task_id = task_id
        return decision

    def complete(self, result: StageResult | None, cancelled: bool) -> str | None:
        """Record the result and move the job on; returns the next stage (already enqueued)."""
        with self._job(for_update=True) as (service, job):
            assert job is not None
            if not self._owns(job):
                return None
            return service.complete_stage(job, self.stage, result, cancelled)

    def hand_back(self, message: str, step: int | None) -> None:
        """Give the stage back to the queue (this worker is shutting down)."""
        with self._job(for_update=True) as (service, job):
            if job is not None and self._owns(job):
                service.hand_back_stage(job, self.stage, message, {"handed_back": True, "step": step})

    def fail(self, code: str, message: str) -> None:
        with self._job(for_update=True) as (service, job):
            if job is not None and self._owns(job):
                service.fail_stage(job, self.stage, code, message)

    def _owns(self, job: Job) -> bool:
        return self.task_id is None or job.task_id in (None, self.task_id)

    # Reads ----------------------------------------------------------------------------------------

    @cached_property
    def inputs(self) -> JobInputs:
        with self._session() as session:
            job = JobRepository(session).get(self.job_id)
            if job is None:
                raise StageError(f"job {self.job_id} no longer exists", code="job_missing")
            datasets = DatasetRepository(session)
            base_model = BaseModelRepository(session).get(job.base_model_id)
            team = TeamRepository(session).get(job.team_id)
            assert base_model is not None and team is not None

            def dataset(dataset_id: uuid.UUID | None) -> DatasetRef | None:
                row = datasets.get(dataset_id) if dataset_id is not None else None
                return DatasetRef.of(row) if row is not None else None

            train = dataset(job.train_dataset_id)
            if train is None:
                raise StageError(
                    f"train dataset {job.train_dataset_id} no longer exists", code="invalid_dataset"
                )
            return JobInputs(
                team_id=job.team_id,
                team_name=team.name,
                spec=JobSpec.model_validate(job.spec),
                base_model=BaseModelRef(
                    base_model.name, base_model.task_family, base_model.source, base_model.shape is not None
                ),
                train=train,
                validation=dataset(job.validation_dataset_id),
                test=dataset(job.test_dataset_id),
            )

    @property
    def spec(self) -> JobSpec:
        return self.inputs.spec

    def result(self, result_type: type[ResultT]) -> ResultT | None:
        """An earlier stage's result, typed; None when that stage has not stored one."""
        with self._session() as session:
            job = JobRepository(session).get(self.job_id)
            stored = job.result.get(result_type.key) if job is not None else None
        return result_type.model_validate(stored) if stored is not None else None

    def metric_points(self) -> list[MetricPoint]:
        with self._session() as session:
            return [
                MetricPoint(point.step, point.epoch, point.name, point.value)
                for point in JobRepository(session).list_metric_points(self.job_id)
            ]

    def checkpoints(self) -> list[CheckpointRef]:
        """The job's recorded checkpoints, oldest first."""
        with self._session() as session:
            return [
                CheckpointRef(checkpoint.step, checkpoint.object_prefix)
                for checkpoint in JobRepository(session).list_checkpoints(self.job_id)
            ]

    def cancel_requested(self) -> bool:
        with self._session() as session:
            job = JobRepository(session).get(self.job_id)
            return job is None or JobStatus(job.status) == JobStatus.CANCELLING

    def baseline_model(self, baseline: str) -> BaselineModel:
        """The trained model that `baseline` ("job:<id>" or "production:<model>") names, of this team."""
        team_id = self.inputs.team_id
        with self._session() as session:
            if baseline.startswith("production:"):
                model_name = baseline.removeprefix("production:")
                registry = RegistryService(session)
                production = registry.production_version(team_id, model_name)
                if production is None:
                    raise StageError(
                        f"model '{model_name}' has no production version to compare with",
                        code="baseline_unavailable",
                    )
                other_id, name = production.job_id, f"{model_name} v{production.version} (production)"
            else:
                other_id = uuid.UUID(baseline.removeprefix("job:"))
                name = f"job {other_id}"
            other = JobRepository(session).get_for_team(team_id, other_id)
            if other is None:
                raise StageError(f"baseline job {other_id} not found", code="baseline_unavailable")
            stored = other.result.get(TrainResult.key)
            trained = TrainResult.model_validate(stored) if stored is not None else None
        if trained is None or trained.model_prefix is None:
            raise StageError(f"baseline job {other_id} has no trained model", code="baseline_unavailable")
        return BaselineModel(job_id=other_id, name=name, model_prefix=trained.model_prefix)

    def other_job_result(self, job_id: uuid.UUID, result_type: type[ResultT]) -> ResultT | None:
        """A stage result of another job of the same team (a teacher's export, say)."""
        with self._session() as session:
            other = JobRepository(session).get_for_team(self.inputs.team_id, job_id)
            stored = other.result.get(result_type.key) if other is not None else None
        return result_type.model_validate(stored) if stored is not None else None

    def lineage(self) -> dict[str, Any]:
        """Where a published version came from: the job, its base model, datasets, spec and results."""
        inputs = self.inputs
        with self._session() as session:
            job = JobRepository(session).get(self.job_id)
            assert job is not None
            results = dict(job.result)
        datasets = {
            role: {"id": str(dataset.id), "name": dataset.name, "sha256": dataset.sha256}
            for role, dataset in (
                ("train", inputs.train),
                ("validation", inputs.validation),
                ("test", inputs.test),
            )
            if dataset is not None
        }
        train = results.get(TrainResult.key) or {}
        return {
            "job_id": str(self.job_id),
            "base_model": {"name": inputs.base_model.name, "source": inputs.base_model.source},
            "datasets": datasets,
            "spec": inputs.spec.model_dump(mode="json"),
            "evaluation": results.get("evaluation"),
            "train": {key: train.get(key) for key in ("global_step", "metrics", "precision")},
        }

    # Writes, one short transaction each -----------------------------------------------------------

    def record_result(self, result: StageResult) -> None:
        """Store a result before the stage ends (the evaluation of a job its gate then stops)."""
        with self._job() as (service, job):
            assert job is not None
            service.store_result(job, result)

    def record_progress(self, progress: dict[str, Any]) -> None:
        with self._job() as (service, job):
            assert job is not None
            service.record_progress(job, progress)

    def record_metrics(self, step: int, epoch: float | None, metrics: dict[str, float]) -> None:
        with self._job() as (service, job):
            assert job is not None
            service.record_metrics(job, step, epoch, metrics)

    def record_checkpoint(self, step: int, object_prefix: str, size_bytes: int) -> None:
        with self._job() as (service, job):
            assert job is not None
            service.record_checkpoint(
                job,
                step=step,
                epoch=job.progress.get("epoch"),
                object_prefix=object_prefix,
                size_bytes=size_bytes,
                metrics=dict(job.latest_metrics),
            )

    def log(self, message: str, data: dict[str, Any] | None = None) -> None:
        with self._job() as (service, job):
            assert job is not None
            service.log(job, message, data)

    def heartbeat(self, peak_memory_bytes: int | None = None) -> bool:
        """Say this run is alive (with its peak memory so far); False once the job is gone or
        another task holds the stage."""
        with self._job() as (service, job):
            if job is None or not self._owns(job):
                return False
            service.heartbeat(job, peak_memory_bytes)
            return True

    def note_memory(self, figures: dict[str, Any]) -> None:
        """Add this stage's own memory figures (its estimate) to the job's memory watch."""
        with self._job() as (service, job):
            assert job is not None
            service.note_memory_watch(job, figures)

    def keep_base_model_shape(self, shape: dict[str, Any]) -> None:
        """Give the job's catalog row the shape read from its files, when it has none (a row
        registered before shapes were kept): submit checks the next job on it at once."""
        with self._job() as (service, job):
            assert job is not None
            entry = BaseModelRepository(service.session).get(job.base_model_id)
            if entry is not None and entry.shape is None:
                entry.shape = shape

    def resolve_spec(self, spec: JobSpec, message: str, data: dict[str, Any]) -> None:
        """Store the spec as it runs from here on (an "auto" batch resolved)."""
        with self._job() as (service, job):
            assert job is not None
            service.resolve_spec(job, spec, message, data)
        self.__dict__["inputs"] = replace(self.inputs, spec=spec)

    @contextmanager
    def registry(self) -> Iterator[RegistryService]:
        """The model registry in one transaction (publish reserves and records versions with it)."""
        with self._session() as session:
            yield RegistryService(session)

    # Scratch space on this worker -----------------------------------------------------------------

    def work_dir(self, *parts: str) -> Path:
        path = self.ctx.job_dir(self.job_id).joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ----------------------------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with session_scope(self.ctx.session_factory) as session:
            yield session

    @contextmanager
    def _job(self, for_update: bool = False) -> Iterator[tuple[JobService, Job | None]]:
        with self._session() as session:
            service = JobService(session)
            yield service, service.jobs.get(self.job_id, for_update=for_update)
