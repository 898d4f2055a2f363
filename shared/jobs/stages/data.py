"""Getting a job's rows and models onto the worker: download once by content hash, parse, split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sklearn.model_selection import train_test_split

from shared.base_models.service import materialize_base_model
from shared.data.errors import DatasetFileError
from shared.data.validation import ClassificationRow, iter_classification_rows
from shared.errors import InvalidDataset, ModelUnavailable, TemperError, TransientError
from shared.jobs.run import DatasetRef, JobRun


@dataclass
class JobRows:
    labels: list[str]
    train: list[ClassificationRow]
    validation: list[ClassificationRow]
    test: list[ClassificationRow] | None

    @property
    def evaluation_rows(self) -> tuple[str, list[ClassificationRow]]:
        """The rows a trained model is judged on: the test set, or the validation rows without one."""
        return ("test", self.test) if self.test is not None else ("validation", self.validation)


def dataset_file(run: JobRun, dataset: DatasetRef) -> Path:
    """The dataset's file on this worker, downloaded once: objects never change after upload."""
    path = run.ctx.cache_dir() / "datasets" / f"{dataset.sha256}.{dataset.format}"
    if not path.is_file():
        run.ctx.store.get_file(dataset.object_key, path)
    return path


def read_rows(run: JobRun, dataset: DatasetRef) -> list[ClassificationRow]:
    try:
        return list(
            iter_classification_rows(dataset_file(run, dataset), dataset.format, dataset.column_mapping)
        )
    except DatasetFileError as exc:
        raise InvalidDataset(f"dataset {dataset.id} no longer passes validation: {exc.reason}") from exc


def load_job_rows(run: JobRun) -> JobRows:
    inputs = run.inputs
    train = read_rows(run, inputs.train)
    labels = sorted({row.label for row in train})
    if inputs.validation is not None:
        validation = read_rows(run, inputs.validation)
    else:
        train, validation = split_validation(
            train, inputs.spec.validation_split or 0.1, inputs.spec.hyperparameters.seed
        )
    test = read_rows(run, inputs.test) if inputs.test is not None else None
    return JobRows(labels=labels, train=train, validation=validation, test=test)


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


def download_model(run: JobRun, prefix: str, target: Path) -> Path:
    """A model folder from the store on this worker, downloaded once (models never change)."""
    if not (target / "config.json").is_file():
        run.ctx.store.download_dir(prefix, target)
    return target


def download_job_model(run: JobRun) -> Path:
    """The job's trained model on this worker."""
    return download_model(run, run.layout.model, run.ctx.job_dir(run.job_id) / "model")


def base_model_dir(run: JobRun) -> Path:
    """The job's base model on this worker; a clear stage error when its weights cannot be found."""
    source = run.inputs.base_model.source
    try:
        return materialize_base_model(source, run.ctx.store, run.ctx.cache_dir())
    except TransientError:
        raise
    except TemperError as exc:
        raise ModelUnavailable(f"base model weights not found at {source}: {exc.message}") from exc
