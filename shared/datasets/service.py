"""Dataset uploads: spool, validate every row, then store content-addressed. Nothing half-written."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from shared.data.columns import ColumnMapping
from shared.data.errors import DatasetFileError
from shared.data.formats import detect_format
from shared.data.instructions import validate_instructions
from shared.data.validation import ValidationLimits, ValidationResult, validate_classification
from shared.datasets.repository import DatasetRepository
from shared.db.models import Dataset
from shared.db.outbox import DeleteObject, outbox
from shared.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from shared.storage.base import ObjectStore
from shared.storage.content import content_key, put_file_if_absent, spool_upload
from shared.storage.errors import ObjectTooLarge

# "instruction": Alpaca rows (instruction, input, output) or chat rows (messages), for causal-LM jobs.
DATASET_TASKS = ("text-classification", "instruction")


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_rows: int
    max_text_chars: int


class DatasetService:
    def __init__(self, session: Session, store: ObjectStore, spool_dir: Path) -> None:
        self.session = session
        self.datasets = DatasetRepository(session)
        self.store = store
        self.spool_dir = spool_dir

    def upload(
        self,
        team_id: uuid.UUID,
        name: str,
        task: str,
        filename: str,
        stream: BinaryIO,
        mapping: ColumnMapping,
        limits: UploadLimits,
    ) -> Dataset:
        if task not in DATASET_TASKS:
            raise InvalidInput(
                f"task '{task}' is not one of {list(DATASET_TASKS)}", details={"field": "task"}
            )
        if not name.strip():
            raise InvalidInput("name must not be empty", details={"field": "name"})
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        try:
            spooled = spool_upload(stream, max_bytes=limits.max_bytes, spool_dir=self.spool_dir)
        except ObjectTooLarge as exc:
            raise PayloadTooLarge(
                f"the file is larger than the upload limit of {limits.max_bytes} bytes",
                details={"field": "file", "limit_bytes": limits.max_bytes},
            ) from exc
        try:
            with spooled.path.open("rb") as head_file:
                head = head_file.read(8192)
            try:
                file_format = detect_format(filename, head)
            except DatasetFileError as exc:
                raise _file_error(exc) from exc
            validation_limits = ValidationLimits(
                max_rows=limits.max_rows, max_text_chars=limits.max_text_chars
            )
            if task == "instruction":
                result = validate_instructions(spooled.path, file_format, validation_limits)
            else:
                result = validate_classification(spooled.path, file_format, mapping, validation_limits)
            _raise_if_invalid(result)
            key = content_key("datasets", spooled.sha256)
            _, created = put_file_if_absent(self.store, key, spooled.path)
            try:
                return self.datasets.add(
                    Dataset(
                        team_id=team_id,
                        name=name.strip(),
                        task=task,
                        format=file_format,
                        filename=Path(filename).name,
                        sha256=spooled.sha256,
                        size_bytes=spooled.size,
                        object_key=key,
                        row_count=result.row_count,
                        labels=result.labels,
                        column_mapping=mapping.model_dump(),
                        report=result.report,
                    )
                )
            except Exception:
                if created:
                    self.store.delete(key)
                raise
        finally:
            spooled.path.unlink(missing_ok=True)

    def get(self, team_id: uuid.UUID, dataset_id: uuid.UUID) -> Dataset:
        dataset = self.datasets.get_for_team(team_id, dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} not found")
        return dataset

    def list(self, team_id: uuid.UUID, limit: int = 100, task: str | None = None) -> list[Dataset]:
        return self.datasets.list_for_team(team_id, limit=limit, task=task)

    def delete(self, team_id: uuid.UUID, dataset_id: uuid.UUID) -> None:
        dataset = self.get(team_id, dataset_id)
        # A job's lineage names its datasets, so a dataset stays while any job refers to it.
        job_ids = self.datasets.jobs_using(dataset.id)
        if job_ids:
            raise Conflict(
                f"dataset {dataset_id} is used by {len(job_ids)} job(s); delete is refused while jobs refer to it",
                details={"jobs": [str(job_id) for job_id in job_ids[:20]]},
            )
        shared_object = self.datasets.other_references_to_object(dataset.object_key, excluding=dataset.id)
        self.datasets.delete(dataset)
        if not shared_object:
            # After the commit: a delete that rolls back must leave the row's file in place.
            outbox(self.session).add(DeleteObject(dataset.object_key))


def _file_error(exc: DatasetFileError) -> InvalidInput:
    detail = {"row": exc.row, "field": exc.field, "reason": exc.reason}
    return InvalidInput(
        f"the file cannot be read: {exc.reason}", details={"errors": [detail], "error_count": 1}
    )


def _raise_if_invalid(result: ValidationResult) -> None:
    if result.ok:
        return
    # Row problems first: a whole-file problem ("one class only") is often their consequence.
    errors = [_row_error_dict(error) for error in result.errors]
    if result.file_error is not None:
        errors.append(_row_error_dict(result.file_error))
    count = result.error_count + (1 if result.file_error is not None else 0)
    first = errors[0]["reason"] if errors else "the dataset is invalid"
    raise InvalidInput(
        f"the dataset was rejected: {count} problem(s); first: {first}",
        details={"errors": errors[:100], "error_count": count},
    )


def _row_error_dict(error) -> dict:
    return {"row": error.row, "field": error.field, "reason": error.reason}
