"""The object-store interface: datasets, checkpoints, reports and exported models live behind it.

Two backends share one key layout (see `shared.storage.keys`): a local directory for the embedded
single-machine setup and MinIO/S3 in production. Code above this layer only sees `ObjectStore`.
"""

from __future__ import annotations

import builtins
import io
import mimetypes
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from shared.storage.atomic import atomic_file, copy_stream
from shared.storage.errors import ObjectNotFound
from shared.storage.keys import deletable_prefix, directory_prefix, validate_key


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    # The backend's own fingerprint (S3 ETag); None where the backend keeps none (local files).
    etag: str | None
    last_modified: datetime | None
    content_type: str | None


class ObjectStore(ABC):
    """A flat namespace of immutable-by-convention blobs addressed by "/"-separated keys."""

    @property
    @abstractmethod
    def description(self) -> str:
        """Where the store lives, without secrets, e.g. "s3://minio:9000/temper" or "file:///data"."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """How a program outside Temper names `key`: a filesystem path for a local store,
        "s3://<bucket>/<key>" for S3 (the reader is given the endpoint on its own)."""

    @abstractmethod
    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        """Upload a local file to `key`, replacing any object there."""

    @abstractmethod
    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        length: int | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        """Upload from a stream in bounded memory; `length=None` when the size is not known.

        With a `length`, exactly that many bytes are read and a shorter stream raises
        `IncompleteStream` without storing anything.
        """

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        return self.put_stream(key, io.BytesIO(data), len(data), content_type)

    def get_file(self, key: str, path: Path) -> Path:
        """Download `key` to `path` (parents created); `path` appears only once complete."""
        path = Path(path)
        with self.open_read(key) as source, atomic_file(path) as sink:
            copy_stream(source, sink)
        return path

    @abstractmethod
    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A context manager yielding a binary stream of the object's bytes."""

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as stream:
            return stream.read()

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Information about `key`; raises `ObjectNotFound` when there is no such object."""

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    @abstractmethod
    def list(self, prefix: str = "", recursive: bool = True) -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix` (a plain string match, as in S3), sorted by key.

        With `recursive=False` only objects with no further "/" after the prefix are listed.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; a missing object is not an error (deletes are retried by idempotent stages)."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under `prefix` taken as a directory; return how many were removed.

        "runs/a" removes "runs/a/..." but not "runs/ab": a plain string match would let a typo or a
        shared id prefix delete another job's objects. The empty prefix is refused for the same
        reason: it would empty the whole store.
        """
        keys = [info.key for info in self.list(deletable_prefix(prefix))]
        for key in keys:
            self.delete(key)
        return len(keys)

    # `builtins.list`: inside this class body, `list` is the method above.
    def upload_dir(self, local_dir: Path, prefix: str) -> builtins.list[ObjectInfo]:
        """Upload every file under `local_dir` to `prefix/<relative path>`; return them by key."""
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise NotADirectoryError(f"{local_dir} is not a directory")
        key_prefix = directory_prefix(prefix)
        uploaded = []
        for path in sorted(_regular_files(local_dir)):
            relative = path.relative_to(local_dir).as_posix()
            uploaded.append(self.put_file(validate_key(key_prefix + relative), path))
        return uploaded

    def download_dir(self, prefix: str, local_dir: Path) -> Path:
        """Download every object under `prefix` (a directory) into `local_dir`, keeping the layout.

        Raises `ObjectNotFound` when nothing is stored there, so that a wrong prefix is not
        mistaken for an empty checkpoint.
        """
        local_dir = Path(local_dir)
        key_prefix = directory_prefix(prefix)
        downloaded = 0
        for info in self.list(key_prefix):
            # Keys were validated on the way in by this code, but another writer may share the
            # bucket; re-checking keeps a hostile key from escaping `local_dir`.
            relative = validate_key(info.key[len(key_prefix) :])
            self.get_file(info.key, local_dir / relative)
            downloaded += 1
        if not downloaded:
            raise ObjectNotFound(key_prefix)
        return local_dir

    @abstractmethod
    def presigned_get_url(self, key: str, expires: timedelta) -> str | None:
        """A URL that downloads `key` without credentials until `expires`; None if unsupported."""

    @abstractmethod
    def ping(self) -> None:
        """Raise `StoreUnavailable` when the store cannot be used right now."""


def default_content_type(key: str) -> str:
    """The content type of an object stored without one: guessed from the key's extension.

    Reports are opened in a browser through presigned URLs, where "text/html" or "image/png"
    decides whether the page renders or downloads.
    """
    guessed, _encoding = mimetypes.guess_type(key, strict=False)
    return guessed or "application/octet-stream"


def _regular_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            path = Path(dirpath) / filename
            if path.is_file():
                yield path
