"""The embedded object store: keys map to files under a root directory.

Writes go through `atomic_file`, so a reader (or a crash) never leaves half an object at a key.
The directory keeps no metadata beside the bytes: content types are derived from the key, and
there is no ETag.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from shared.storage.atomic import atomic_file, copy_stream, is_temp_name
from shared.storage.base import ObjectInfo, ObjectStore, default_content_type
from shared.storage.errors import IncompleteStream, InvalidKey, ObjectNotFound, StoreUnavailable
from shared.storage.keys import validate_key, validate_prefix


class LocalObjectStore(ObjectStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()

    @property
    def description(self) -> str:
        return self.root.as_uri()

    def uri(self, key: str) -> str:
        return str(self._path_for(key))

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        with open(path, "rb") as source:
            return self.put_stream(key, source, content_type=content_type)

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        length: int | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        # `content_type` is accepted for interface parity; a directory has nowhere to keep it.
        target = self._path_for(key)
        with _key_conflicts_refused(key), atomic_file(target) as sink:
            copied = copy_stream(stream, sink, max_bytes=length)
            if length is not None and copied < length:
                raise IncompleteStream(key, expected=length, received=copied)
        return self.stat(key)

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        path = self._path_for(key)
        try:
            source = open(path, "rb")  # noqa: SIM115 (closed below, after the caller is done)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        with source:
            yield source

    def stat(self, key: str) -> ObjectInfo:
        path = self._path_for(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return self._info(key, path)

    def list(self, prefix: str = "", recursive: bool = True) -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        # Only the directory that holds the prefix's last (possibly partial) segment can match.
        base_key, _, _partial = prefix.rpartition("/")
        base_dir = self.root.joinpath(*base_key.split("/")) if base_key else self.root
        if not base_dir.is_dir():
            return
        matching = sorted(self._keys_under(base_dir, prefix, recursive))
        for key in matching:
            path = self.root.joinpath(*key.split("/"))
            try:
                yield self._info(key, path)
            except FileNotFoundError:
                continue  # deleted since the walk: S3 would not list it either

    def delete(self, key: str) -> None:
        path = self._path_for(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return
        self._prune_empty_parents(path.parent)

    def presigned_get_url(self, key: str, expires: timedelta) -> str | None:
        validate_key(key)
        return None

    def ping(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailable(f"local object store {self.root} cannot be created: {error}") from error
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreUnavailable(f"local object store {self.root} is not writable")

    def _path_for(self, key: str) -> Path:
        segments = validate_key(key).split("/")
        if any(is_temp_name(segment) for segment in segments):
            raise InvalidKey(key, "names of this form are reserved for in-progress writes")
        return self.root.joinpath(*segments)

    def _info(self, key: str, path: Path) -> ObjectInfo:
        status = path.stat()
        return ObjectInfo(
            key=key,
            size=status.st_size,
            etag=None,
            last_modified=datetime.fromtimestamp(status.st_mtime, tz=UTC),
            content_type=default_content_type(key),
        )

    def _keys_under(self, base_dir: Path, prefix: str, recursive: bool) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(base_dir):
            relative_dir = Path(dirpath).relative_to(self.root).as_posix()
            dir_key = "" if relative_dir == "." else relative_dir + "/"
            for filename in filenames:
                key = dir_key + filename
                if key.startswith(prefix) and not is_temp_name(filename):
                    yield key
            if not recursive:
                return
            # Descend only where keys can still match: below the prefix, or on the way to it.
            dirnames[:] = [
                name
                for name in dirnames
                if (dir_key + name + "/").startswith(prefix) or prefix.startswith(dir_key + name + "/")
            ]

    def _prune_empty_parents(self, directory: Path) -> None:
        # Empty directories are invisible in listings but would pile up as jobs come and go.
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


@contextmanager
def _key_conflicts_refused(key: str) -> Iterator[None]:
    # S3 can hold both "a" and "a/b"; a directory cannot be a file and a folder at once.
    try:
        yield
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as error:
        raise InvalidKey(
            key, "conflicts with an existing object or prefix in the local store (a file and a folder)"
        ) from error
