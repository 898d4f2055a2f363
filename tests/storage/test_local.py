"""What only the local directory backend does: atomic files on disk, folder/file conflicts, ping."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest

from shared.storage.errors import InvalidKey, StoreUnavailable
from shared.storage.local import LocalObjectStore


class _StreamThatFailsHalfway:
    """Hands out `good_bytes`, runs `midway` (to look at the store mid-write), then fails."""

    def __init__(self, good_bytes: bytes, midway=lambda: None) -> None:
        self._remaining = io.BytesIO(good_bytes)
        self._midway = midway
        self._called = False

    def read(self, size: int = -1) -> bytes:
        chunk = self._remaining.read(size)
        if chunk:
            return chunk
        if not self._called:
            self._called = True
            self._midway()
        raise ConnectionResetError("client went away")


def _files_on_disk(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def test_failed_write_leaves_previous_object_and_no_temp_file(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("datasets/train.jsonl", b"old content")

    with pytest.raises(ConnectionResetError):
        store.put_stream("datasets/train.jsonl", _StreamThatFailsHalfway(b"new half" * 100_000))
    with pytest.raises(ConnectionResetError):
        store.put_stream("datasets/other.jsonl", _StreamThatFailsHalfway(b"new half"))

    assert store.get_bytes("datasets/train.jsonl") == b"old content"
    assert _files_on_disk(tmp_path) == ["datasets/train.jsonl"]


def test_readers_see_the_old_object_while_a_write_is_in_progress(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("reports/r.json", b"old")
    seen_mid_write: dict[str, object] = {}

    def look() -> None:
        seen_mid_write["bytes"] = store.get_bytes("reports/r.json")
        seen_mid_write["keys"] = [info.key for info in store.list()]

    with pytest.raises(ConnectionResetError):
        store.put_stream("reports/r.json", _StreamThatFailsHalfway(b"partial new", midway=look))

    assert seen_mid_write == {"bytes": b"old", "keys": ["reports/r.json"]}


def test_delete_prunes_directories_left_empty(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put_bytes("a/b/c/only", b"x")
    store.put_bytes("a/keep", b"y")

    store.delete("a/b/c/only")

    assert not (tmp_path / "objects" / "a" / "b").exists()
    assert store.get_bytes("a/keep") == b"y"


def test_a_key_cannot_be_both_an_object_and_a_folder(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("runs/a", b"file")
    store.put_bytes("runs/b/inner", b"inner")

    with pytest.raises(InvalidKey, match="conflicts"):
        store.put_bytes("runs/a/inner", b"x")
    with pytest.raises(InvalidKey, match="conflicts"):
        store.put_bytes("runs/b", b"x")

    assert store.get_bytes("runs/a") == b"file"
    assert store.get_bytes("runs/b/inner") == b"inner"


def test_temp_file_names_are_reserved(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)

    with pytest.raises(InvalidKey, match="reserved"):
        store.put_bytes("a/.partial-0123456789abcdef", b"x")


def test_ping_creates_the_root_and_fails_when_it_cannot(tmp_path: Path) -> None:
    LocalObjectStore(tmp_path / "new" / "root").ping()
    (tmp_path / "a-file").write_text("not a directory")

    assert (tmp_path / "new" / "root").is_dir()
    with pytest.raises(StoreUnavailable, match="a-file"):
        LocalObjectStore(tmp_path / "a-file" / "root").ping()


def test_description_and_presigned_url(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)

    assert store.description == tmp_path.as_uri()
    assert store.presigned_get_url("a/b", timedelta(minutes=5)) is None
