"""Getting a job's rows onto the worker: download once by content hash, parse, split."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from sklearn.model_selection import train_test_split

from shared.base_models.service import materialize_base_model
from shared.data.errors import DatasetFileError
from shared.data.validation import ClassificationRow, iter_classification_rows
from shared.datasets.repository import DatasetRepository
from shared.db.models import BaseModelEntry, Dataset, Job
from shared.errors import StageError, TemperError
from shared.jobs.spec import ColumnMapping, JobSpec
from shared.jobs.stages.context import StageContext, job_prefix


@dataclass
class JobRows:
    labels: list[str]
    train: list[ClassificationRow]
    validation: list[ClassificationRow]
    test: list[ClassificationRow] | None


def dataset_file(ctx: StageContext, dataset: Dataset) -> Path:
    """The dataset's file on this worker, downloaded once: objects never change after upload."""
    path = ctx.cache_dir() / "datasets" / f"{dataset.sha256}.{dataset.format}"
    if not path.is_file():
        ctx.store.get_file(dataset.object_key, path)
    return path


def read_rows(ctx: StageContext, dataset: Dataset) -> list[ClassificationRow]:
    mapping = ColumnMapping.model_validate(dataset.column_mapping)
    try:
        return list(iter_classification_rows(dataset_file(ctx, dataset), dataset.format, mapping))
    except DatasetFileError as exc:
        raise StageError(
            f"dataset {dataset.id} no longer passes validation: {exc.reason}", code="invalid_dataset"
        ) from exc


def load_job_rows(ctx: StageContext, job_id: uuid.UUID) -> tuple[JobSpec, JobRows]:
    with ctx.session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        repository = DatasetRepository(session)
        spec = JobSpec.model_validate(job.spec)
        train_set = repository.get(job.train_dataset_id)
        validation_set = repository.get(job.validation_dataset_id) if job.validation_dataset_id else None
        test_set = repository.get(job.test_dataset_id) if job.test_dataset_id else None
    assert train_set is not None
    train = read_rows(ctx, train_set)
    labels = sorted({row.label for row in train})
    if validation_set is not None:
        validation = read_rows(ctx, validation_set)
    else:
        train, validation = split_validation(train, spec.validation_split or 0.1, spec.hyperparameters.seed)
    test = read_rows(ctx, test_set) if test_set is not None else None
    return spec, JobRows(labels=labels, train=train, validation=validation, test=test)


def split_validation(
    rows: list[ClassificationRow], fraction: float, seed: int
) -> tuple[list[ClassificationRow], list[ClassificationRow]]:
    """A seeded split, stratified when every class has at least two rows (files are often sorted)."""
    labels = [row.label for row in rows]
    counts = {label: labels.count(label) for label in set(labels)}
    stratify = labels if min(counts.values()) >= 2 and int(len(rows) * fraction) >= len(counts) else None
    train, validation = train_test_split(
        rows, test_size=fraction, random_state=seed, shuffle=True, stratify=stratify
    )
    return list(train), list(validation)


def download_job_model(ctx: StageContext, job_id: uuid.UUID) -> Path:
    """The job's trained model on this worker (downloaded once per worker and job)."""
    target = ctx.job_dir(job_id) / "model"
    if not (target / "config.json").is_file():
        ctx.store.download_dir(f"{job_prefix(job_id)}/model", target)
    return target


def base_model_dir(ctx: StageContext, job_id: uuid.UUID) -> Path:
    """The job's base model on this worker; a clear stage error when its weights cannot be found."""
    with ctx.session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        base_model = session.get(BaseModelEntry, job.base_model_id)
        assert base_model is not None
        source = base_model.source
    try:
        return materialize_base_model(source, ctx.store, ctx.cache_dir())
    except TemperError as exc:
        raise StageError(
            f"base model weights not found at {source}: {exc.message}", code="base_model_unavailable"
        ) from exc
