"""Content-addressed objects: uploads are spooled to disk, hashed, and stored under their sha256.

An uploaded dataset is hashed while it is spooled, so the key is known before the store sees a
byte, and the same file uploaded twice is stored once. Objects at content keys are never
overwritten: the key is the promise that the bytes are the ones that were hashed.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shared.storage.atomic import COPY_CHUNK_BYTES
from shared.storage.base import ObjectInfo, ObjectStore
from shared.storage.errors import ObjectNotFound, ObjectTooLarge, StorageError
from shared.storage.keys import directory_prefix, validate_key

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class SpooledUpload:
    """A request body copied to a local file; the caller deletes `path` when done with it."""

    path: Path
    sha256: str
    size: int


def spool_upload(stream: BinaryIO, max_bytes: int, spool_dir: Path) -> SpooledUpload:
    """Copy `stream` to a temp file in `spool_dir`, hashing it, in chunks.

    Raises `ObjectTooLarge` as soon as more than `max_bytes` have arrived, without reading the
    rest. On any failure the temp file is removed.
    """
    spool_dir = Path(spool_dir)
    spool_dir.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix="upload-", suffix=".spool", dir=spool_dir)
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(descriptor, "wb") as spool:
            while chunk := stream.read(COPY_CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise ObjectTooLarge(limit=max_bytes, received=size)
                digest.update(chunk)
                spool.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return SpooledUpload(path=path, sha256=digest.hexdigest(), size=size)


def content_key(prefix: str, sha256: str) -> str:
    """The key of content with this hash under `prefix`, e.g. "datasets/sha256/<hex>"."""
    if not _SHA256_HEX.match(sha256):
        raise ValueError(f"not a lowercase hex sha256 digest: {sha256!r}")
    return validate_key(f"{directory_prefix(prefix)}sha256/{sha256}")


def put_file_if_absent(
    store: ObjectStore, key: str, path: Path, content_type: str | None = None
) -> tuple[ObjectInfo, bool]:
    """Upload `path` to `key` unless an object is already there; return it and whether it is new.

    Two concurrent uploads of the same content may both write, which is harmless: the bytes are
    identical. An existing object of a different size means the key no longer matches its
    content, which is refused rather than silently kept or replaced.
    """
    path = Path(path)
    try:
        existing = store.stat(key)
    except ObjectNotFound:
        return store.put_file(key, path, content_type), True
    local_size = path.stat().st_size
    if existing.size != local_size:
        raise StorageError(
            f"{key!r} already holds {existing.size} bytes but the content to store has {local_size}; "
            "content-addressed objects are never overwritten"
        )
    return existing, False
