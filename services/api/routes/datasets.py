from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status

from services.api import schemas
from services.api.deps import AuditorDep, ReadDep, SessionDep, SettingsDep, StoreDep, WriteDep
from services.api.openapi import errors
from shared.data.columns import ColumnMapping
from shared.datasets.service import DatasetService, UploadLimits
from shared.errors import InvalidInput
from shared.text import Text

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


def _service(session, store, settings) -> DatasetService:
    return DatasetService(session, store, spool_dir=settings.work_dir / "uploads")


@router.post(
    "",
    response_model=schemas.Dataset,
    status_code=status.HTTP_201_CREATED,
    operation_id="datasets_upload",
    responses=errors(403, 409, 413, 422),
)
def upload_dataset(
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: WriteDep,
    audit: AuditorDep,
    file: Annotated[UploadFile, File(description="JSONL, CSV or Parquet; the extension names the format")],
    name: Annotated[Text, Form(min_length=1, max_length=200, examples=["tickets-train"])],
    task: Annotated[Text, Form(examples=["text-classification"])] = "text-classification",
    text_column: Annotated[Text, Form(description="The column holding the text", examples=["text"])] = "text",
    label_column: Annotated[
        Text, Form(description="The column holding the label name", examples=["label"])
    ] = "label",
    text_pair_column: Annotated[
        Text | None, Form(description="A second text column, for pair tasks", examples=["question"])
    ] = None,
) -> object:
    """Upload a dataset file; every row is validated before it is stored (422 lists bad rows)."""
    mapping = ColumnMapping(text=text_column, label=label_column, text_pair=text_pair_column or None)
    if not file.filename:
        raise InvalidInput(
            "the upload has no file name; the format is read from its extension", details={"field": "file"}
        )
    limits = UploadLimits(
        max_bytes=settings.max_upload_bytes,
        max_rows=settings.max_dataset_rows,
        max_text_chars=settings.max_text_chars,
    )
    dataset = _service(session, store, settings).upload(
        principal.team_id, name, task, file.filename, file.file, mapping, limits
    )
    audit.record(
        "dataset.upload",
        "dataset",
        dataset.id,
        {"name": name, "task": task, "filename": file.filename, "sha256": dataset.sha256},
    )
    return dataset


@router.get("", response_model=list[schemas.Dataset], operation_id="datasets_list", responses=errors(422))
def list_datasets(
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: ReadDep,
    task: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> object:
    return _service(session, store, settings).list(principal.team_id, limit=limit, task=task)


@router.get(
    "/{dataset_id}", response_model=schemas.Dataset, operation_id="datasets_get", responses=errors(404, 422)
)
def get_dataset(
    dataset_id: uuid.UUID,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: ReadDep,
) -> object:
    return _service(session, store, settings).get(principal.team_id, dataset_id)


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="datasets_delete",
    responses=errors(403, 404, 409, 422),
)
def delete_dataset(
    dataset_id: uuid.UUID,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: WriteDep,
    audit: AuditorDep,
) -> Response:
    _service(session, store, settings).delete(principal.team_id, dataset_id)
    audit.record("dataset.delete", "dataset", dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
