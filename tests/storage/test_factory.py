"""Settings URLs to stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.storage.factory import open_object_store
from shared.storage.local import LocalObjectStore
from shared.storage.s3 import MinioObjectStore
from tests.support.s3_server import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY


def test_file_url_and_plain_paths_open_a_local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    from_url = open_object_store((tmp_path / "objects").as_uri())
    from_path = open_object_store(str(tmp_path / "objects"))
    from_relative = open_object_store("var/objects")

    assert isinstance(from_url, LocalObjectStore)
    assert from_url.root == from_path.root == tmp_path / "objects"
    assert from_relative.root == tmp_path / "var" / "objects"
    from_url.put_bytes("a/b", b"shared")
    assert from_path.get_bytes("a/b") == b"shared"


def test_s3_urls_choose_tls_by_scheme() -> None:
    plain = open_object_store("s3://minio:9000/models", access_key="k", secret_key="s")
    tls = open_object_store("s3s://s3.internal:443/models/", access_key="k", secret_key="s")

    assert isinstance(plain, MinioObjectStore)
    assert (plain.endpoint, plain.bucket, plain.secure) == ("minio:9000", "models", False)
    assert isinstance(tls, MinioObjectStore)
    assert (tls.endpoint, tls.bucket, tls.secure) == ("s3.internal:443", "models", True)


def test_s3_url_opens_a_working_store(s3_server: str) -> None:
    store = open_object_store(
        f"s3://{s3_server}/temper-factory", S3_ACCESS_KEY, S3_SECRET_KEY, region=S3_REGION
    )

    store.put_bytes("hello.txt", b"hi")

    assert store.get_bytes("hello.txt") == b"hi"
    assert store.description == f"s3://{s3_server}/temper-factory"
    store.delete("hello.txt")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://minio:9000", "exactly one bucket"),
        ("s3://minio:9000/bucket/nested", "exactly one bucket"),
        ("s3://key:secret@minio:9000/bucket", "not in the URL"),
        ("gs://bucket", "unsupported"),
        ("file://fileserver/share", "remote host"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_object_store(url, access_key="k", secret_key="s")


def test_an_access_key_needs_its_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        open_object_store("s3://minio:9000/bucket", access_key="k")
