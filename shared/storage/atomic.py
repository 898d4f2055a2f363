"""Whole-or-nothing file writes: data goes to a temp file beside the target, then `os.replace`.

A reader of the target sees either the previous file or the complete new one, never a prefix of
it, and a failed write leaves no trace. The temp file sits in the target's own directory because
`os.replace` is only atomic within one filesystem.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

# Chunk size for streamed copies: large enough for throughput, small enough to bound memory.
COPY_CHUNK_BYTES = 1024 * 1024

TEMP_NAME_PREFIX = ".partial-"

# A concurrent delete may prune the empty directory between our mkdir and our open; retrying a
# few times covers that race without hiding a real error.
_CREATE_ATTEMPTS = 3


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of our in-progress writes (to be hidden from listings)."""
    return name.startswith(TEMP_NAME_PREFIX)


@contextmanager
def atomic_file(target: Path) -> Iterator[BinaryIO]:
    """Yield a binary file; on a clean exit it replaces `target`, on an error it is removed."""
    temp_path, temp_file = _create_temp_beside(target)
    try:
        with temp_file:
            yield temp_file
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_path, target)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def copy_stream(source: BinaryIO, sink: BinaryIO, max_bytes: int | None = None) -> int:
    """Copy `source` into `sink` in chunks (at most `max_bytes` when given); return bytes copied."""
    copied = 0
    while max_bytes is None or copied < max_bytes:
        want = COPY_CHUNK_BYTES if max_bytes is None else min(COPY_CHUNK_BYTES, max_bytes - copied)
        chunk = source.read(want)
        if not chunk:
            break
        sink.write(chunk)
        copied += len(chunk)
    return copied


def _create_temp_beside(target: Path) -> tuple[Path, BinaryIO]:
    attempts_left = _CREATE_ATTEMPTS
    while True:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp_path = target.parent / f"{TEMP_NAME_PREFIX}{secrets.token_hex(8)}"
        try:
            return temp_path, open(temp_path, "xb")
        except FileNotFoundError:
            attempts_left -= 1
            if not attempts_left:
                raise
