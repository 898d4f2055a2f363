"""`client.datasets`: upload (streamed, with progress), list, get, delete."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

from temper_client._http import HttpSession
from temper_client.types import Dataset

# Called as bytes are handed to the connection: (bytes sent so far, total bytes of the file).
ProgressCallback = Callable[[int, int], None]


class Datasets:
    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def upload(
        self,
        path: str | os.PathLike[str],
        *,
        name: str,
        task: str = "text-classification",
        text_column: str = "text",
        label_column: str = "label",
        text_pair_column: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Dataset:
        """Upload a JSONL, CSV or Parquet file (the format is read from its extension).

        The file is streamed from disk, never read whole into memory. The server validates every
        row before it answers; a bad file raises `InvalidInput` whose `details["errors"]` lists
        the rows and reasons.
        """
        file_path = Path(path)
        form = {"name": name, "task": task, "text_column": text_column, "label_column": label_column}
        if text_pair_column:
            form["text_pair_column"] = text_pair_column
        with file_path.open("rb") as handle:
            body = _ProgressReader(handle, os.fstat(handle.fileno()).st_size, on_progress)
            return Dataset.model_validate(
                self._http.json("POST", "/v1/datasets", data=form, files={"file": (file_path.name, body)})
            )

    def list(self, *, task: str | None = None, limit: int = 100) -> list[Dataset]:
        """The team's datasets, newest first (at most `limit`, up to 500)."""
        items = self._http.json("GET", "/v1/datasets", params={"task": task, "limit": limit})
        return [Dataset.model_validate(item) for item in items]

    def get(self, dataset_id: uuid.UUID | str) -> Dataset:
        return Dataset.model_validate(self._http.json("GET", f"/v1/datasets/{dataset_id}"))

    def delete(self, dataset_id: uuid.UUID | str) -> None:
        """Delete a dataset; `Conflict` (with the job ids in `details`) while a job uses it."""
        self._http.request("DELETE", f"/v1/datasets/{dataset_id}")


class _ProgressReader:
    """A binary file that reports how much of it has been read.

    httpx's multipart encoder reads the file in chunks as it sends them, seeks to 0 before each
    attempt (so a retried upload starts over, and so does the count), and takes the length from
    `fileno()` for the Content-Length header.
    """

    def __init__(self, handle: IO[bytes], total: int, callback: ProgressCallback | None) -> None:
        self._handle = handle
        self._total = total
        self._callback = callback
        self._sent = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._sent += len(chunk)
        if self._callback is not None and chunk:
            self._callback(self._sent, self._total)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._handle.seek(offset, whence)
        self._sent = position
        return position

    def tell(self) -> int:
        return self._handle.tell()

    def fileno(self) -> int:
        return self._handle.fileno()
