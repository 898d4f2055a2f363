"""Behaviour every ObjectStore promises, checked against the local directory and S3 (moto)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from shared.storage.base import ObjectStore
from shared.storage.errors import IncompleteStream, InvalidKey, ObjectNotFound
from shared.storage.s3 import PART_SIZE
from tests.storage.generated_stream import GeneratedStream


def test_bytes_round_trip_and_stat(store: ObjectStore) -> None:
    info = store.put_bytes("reports/run-1/metrics.json", b'{"accuracy": 0.9}')

    assert store.get_bytes("reports/run-1/metrics.json") == b'{"accuracy": 0.9}'
    assert info.key == "reports/run-1/metrics.json"
    assert info.size == 17
    stat = store.stat("reports/run-1/metrics.json")
    assert stat.size == 17
    assert stat.content_type == "application/json"
    assert stat.last_modified is not None
    assert store.exists("reports/run-1/metrics.json")


def test_put_replaces_the_previous_object(store: ObjectStore) -> None:
    store.put_bytes("a/key", b"first version, longer")
    store.put_bytes("a/key", b"second")

    assert store.get_bytes("a/key") == b"second"
    assert store.stat("a/key").size == 6


def test_file_round_trip_creates_parent_directories(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "model.safetensors"
    payload = bytes(range(256)) * 4096
    source.write_bytes(payload)

    info = store.put_file("checkpoints/job/checkpoint-10/model.safetensors", source)
    target = tmp_path / "downloaded" / "deep" / "model.safetensors"
    returned = store.get_file("checkpoints/job/checkpoint-10/model.safetensors", target)

    assert info.size == len(payload)
    assert returned == target
    assert target.read_bytes() == payload
    assert [path.name for path in target.parent.iterdir()] == ["model.safetensors"]


def test_stream_of_unknown_length_spanning_several_parts(store: ObjectStore, tmp_path: Path) -> None:
    # More than two multipart parts on S3, and not a multiple of the part size.
    stream = GeneratedStream(2 * PART_SIZE + 12_345)

    info = store.put_stream("datasets/big.jsonl", stream)

    assert info.size == stream.size
    downloaded = store.get_file("datasets/big.jsonl", tmp_path / "big.jsonl")
    assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == stream.sha256_so_far()


def test_stream_with_length_stores_exactly_that_many_bytes(store: ObjectStore) -> None:
    store.put_stream("a/prefix-only", io.BytesIO(b"0123456789"), length=4)

    assert store.get_bytes("a/prefix-only") == b"0123"


def test_stream_shorter_than_its_length_stores_nothing(store: ObjectStore) -> None:
    store.put_bytes("a/kept", b"previous")

    with pytest.raises(IncompleteStream) as raised:
        store.put_stream("a/kept", io.BytesIO(b"short"), length=100)
    with pytest.raises(IncompleteStream):
        store.put_stream("a/new", io.BytesIO(b"short"), length=100)

    assert (raised.value.expected, raised.value.received) == (100, 5)
    assert store.get_bytes("a/kept") == b"previous"
    assert not store.exists("a/new")


def test_open_read_streams_the_object(store: ObjectStore) -> None:
    store.put_bytes("logs/train.log", b"line 1\nline 2\n" * 1000)

    with store.open_read("logs/train.log") as stream:
        first = stream.read(7)
        rest = stream.read()

    assert first == b"line 1\n"
    assert first + rest == b"line 1\nline 2\n" * 1000


def test_missing_objects_raise_object_not_found(store: ObjectStore, tmp_path: Path) -> None:
    target = tmp_path / "never.bin"

    with pytest.raises(ObjectNotFound) as raised:
        store.get_bytes("missing/key")
    with pytest.raises(ObjectNotFound):
        store.stat("missing/key")
    with pytest.raises(ObjectNotFound):
        store.get_file("missing/key", target)
    with pytest.raises(ObjectNotFound), store.open_read("missing/key"):
        pass

    assert raised.value.key == "missing/key"
    assert not store.exists("missing/key")
    assert not target.exists()


def test_delete_removes_and_tolerates_missing(store: ObjectStore) -> None:
    store.put_bytes("a/b/c", b"x")

    store.delete("a/b/c")
    store.delete("a/b/c")

    assert not store.exists("a/b/c")
    assert list(store.list("a/")) == []


def test_list_matches_prefix_as_a_string_and_sorts_by_key(store: ObjectStore) -> None:
    for key in ["runs/b/2", "runs/a/x/1", "runs/a/0", "runs/ab/3", "other/4"]:
        store.put_bytes(key, key.encode())

    everything = [info.key for info in store.list()]
    under_runs_a = [info.key for info in store.list("runs/a")]
    directory_a = [info.key for info in store.list("runs/a/")]
    top_level_of_a = [info.key for info in store.list("runs/a/", recursive=False)]

    assert everything == ["other/4", "runs/a/0", "runs/a/x/1", "runs/ab/3", "runs/b/2"]
    assert under_runs_a == ["runs/a/0", "runs/a/x/1", "runs/ab/3"]
    assert directory_a == ["runs/a/0", "runs/a/x/1"]
    assert top_level_of_a == ["runs/a/0"]
    assert [info.size for info in store.list("runs/b/")] == [len(b"runs/b/2")]
    assert list(store.list("nothing/here/")) == []


def test_delete_prefix_treats_the_prefix_as_a_directory(store: ObjectStore) -> None:
    for key in ["ckpt/job-1/a", "ckpt/job-1/sub/b", "ckpt/job-10/c"]:
        store.put_bytes(key, b"x")

    removed = store.delete_prefix("ckpt/job-1")

    assert removed == 2
    assert [info.key for info in store.list("ckpt/")] == ["ckpt/job-10/c"]
    with pytest.raises(InvalidKey):
        store.delete_prefix("")
    assert store.exists("ckpt/job-10/c")


def test_upload_dir_and_download_dir_keep_the_layout(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "checkpoint"
    (source / "nested").mkdir(parents=True)
    (source / "config.json").write_text('{"layers": 2}')
    (source / "nested" / "weights.bin").write_bytes(b"\x00\x01" * 1000)

    uploaded = store.upload_dir(source, "checkpoints/job-7/checkpoint-3")
    target = store.download_dir("checkpoints/job-7/checkpoint-3/", tmp_path / "restored")

    assert [info.key for info in uploaded] == [
        "checkpoints/job-7/checkpoint-3/config.json",
        "checkpoints/job-7/checkpoint-3/nested/weights.bin",
    ]
    assert (target / "config.json").read_text() == '{"layers": 2}'
    assert (target / "nested" / "weights.bin").read_bytes() == b"\x00\x01" * 1000
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        "config.json",
        "nested/weights.bin",
    ]


def test_download_dir_of_an_empty_prefix_is_an_error(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("checkpoints/job-70/x", b"x")

    with pytest.raises(ObjectNotFound):
        store.download_dir("checkpoints/job-7", tmp_path / "restored")


@pytest.mark.parametrize(
    "bad_key",
    ["", "/absolute", "a/../b", "..", "a//b", "a\\b", "trailing/", "./a", "line\nbreak"],
)
def test_invalid_keys_are_refused(store: ObjectStore, bad_key: str) -> None:
    with pytest.raises(InvalidKey):
        store.put_bytes(bad_key, b"x")
    with pytest.raises(InvalidKey):
        store.get_bytes(bad_key)
    with pytest.raises(InvalidKey):
        store.delete(bad_key)

    assert list(store.list()) == []


def test_invalid_list_prefix_is_refused(store: ObjectStore) -> None:
    with pytest.raises(InvalidKey):
        list(store.list("../outside"))
