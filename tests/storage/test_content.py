"""Spooling uploads with a size limit, and content-addressed keys that are never overwritten."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from shared.storage.base import ObjectStore
from shared.storage.content import content_key, put_file_if_absent, spool_upload
from shared.storage.errors import ObjectTooLarge, StorageError
from tests.storage.generated_stream import GeneratedStream


class _BrokenBody:
    def __init__(self) -> None:
        self._sent = False

    def read(self, size: int = -1) -> bytes:
        if not self._sent:
            self._sent = True
            return b"some bytes"
        raise ConnectionResetError("client went away")


def test_spool_upload_hashes_and_copies_the_body(tmp_path: Path) -> None:
    body = b'{"text": "hello", "label": "greeting"}\n' * 50_000

    spooled = spool_upload(io.BytesIO(body), max_bytes=len(body), spool_dir=tmp_path / "spool")

    assert spooled.sha256 == hashlib.sha256(body).hexdigest()
    assert spooled.size == len(body)
    assert spooled.path.parent == tmp_path / "spool"
    assert spooled.path.read_bytes() == body


def test_spool_upload_stops_at_the_limit_and_leaves_nothing(tmp_path: Path) -> None:
    body = GeneratedStream(50 * 1024 * 1024)
    limit = 3 * 1024 * 1024

    with pytest.raises(ObjectTooLarge) as raised:
        spool_upload(body, max_bytes=limit, spool_dir=tmp_path)

    assert raised.value.limit == limit
    assert limit < raised.value.received <= body.position
    # It stopped soon after the limit instead of draining a 50 MiB body.
    assert body.position < 2 * limit
    assert list(tmp_path.iterdir()) == []


def test_spool_upload_removes_the_temp_file_when_the_body_breaks(tmp_path: Path) -> None:
    with pytest.raises(ConnectionResetError):
        spool_upload(_BrokenBody(), max_bytes=1024, spool_dir=tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_content_key_layout_and_validation() -> None:
    digest = hashlib.sha256(b"x").hexdigest()

    assert content_key("datasets", digest) == f"datasets/sha256/{digest}"
    assert content_key("datasets/", digest) == f"datasets/sha256/{digest}"
    with pytest.raises(ValueError, match="sha256"):
        content_key("datasets", digest.upper())
    with pytest.raises(ValueError, match="sha256"):
        content_key("datasets", "../../etc/passwd")


def test_put_file_if_absent_never_overwrites(store: ObjectStore, tmp_path: Path) -> None:
    first = tmp_path / "first.jsonl"
    first.write_bytes(b"original")
    same_size = tmp_path / "same_size.jsonl"
    same_size.write_bytes(b"imposter")
    other_size = tmp_path / "other_size.jsonl"
    other_size.write_bytes(b"longer content")
    key = content_key("datasets", hashlib.sha256(b"original").hexdigest())

    created_info, created = put_file_if_absent(store, key, first)
    again_info, created_again = put_file_if_absent(store, key, same_size)

    assert (created, created_again) == (True, False)
    assert created_info.size == again_info.size == 8
    assert store.get_bytes(key) == b"original"
    with pytest.raises(StorageError, match="never overwritten"):
        put_file_if_absent(store, key, other_size)
    assert store.get_bytes(key) == b"original"
