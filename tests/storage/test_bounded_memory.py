"""Large objects move through the stores in bounded memory: a 64 MiB stream never sits in RAM."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.storage.base import ObjectStore
from tests.storage.generated_stream import GeneratedStream

STREAM_BYTES = 64 * 1024 * 1024
MiB = 1024 * 1024
# The S3 bound is set by the multipart part size (see shared.storage.s3.PART_SIZE); the local
# store copies in 1 MiB chunks.
PEAK_LIMIT_BYTES = {"MinioObjectStore": 40 * MiB, "LocalObjectStore": 4 * MiB}


def _peak_traced_bytes(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("length_known", [False, True], ids=["unknown-length", "known-length"])
def test_put_stream_memory_is_bounded(store: ObjectStore, length_known: bool) -> None:
    stream = GeneratedStream(STREAM_BYTES)
    length = STREAM_BYTES if length_known else None

    peak = _peak_traced_bytes(lambda: store.put_stream("big/stream.bin", stream, length=length))

    assert store.stat("big/stream.bin").size == STREAM_BYTES
    assert peak < PEAK_LIMIT_BYTES[type(store).__name__], f"peak {peak / MiB:.1f} MiB"


def test_get_file_memory_is_bounded(store: ObjectStore, tmp_path: Path) -> None:
    stream = GeneratedStream(STREAM_BYTES)
    store.put_stream("big/stream.bin", stream)
    target = tmp_path / "download.bin"

    peak = _peak_traced_bytes(lambda: store.get_file("big/stream.bin", target))

    digest = hashlib.sha256()
    with open(target, "rb") as downloaded:
        while chunk := downloaded.read(MiB):
            digest.update(chunk)
    assert digest.hexdigest() == stream.sha256_so_far()
    assert peak < PEAK_LIMIT_BYTES[type(store).__name__], f"peak {peak / MiB:.1f} MiB"
