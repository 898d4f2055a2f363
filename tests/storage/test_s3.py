"""What only the MinIO/S3 backend does, against moto's S3 server on loopback."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from shared.storage.errors import ObjectNotFound, StoreUnavailable
from shared.storage.s3 import MinioObjectStore
from tests.support.s3_server import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY


def _closed_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _store_on(endpoint: str, bucket: str) -> MinioObjectStore:
    return MinioObjectStore(endpoint, S3_ACCESS_KEY, S3_SECRET_KEY, bucket, region=S3_REGION)


def test_presigned_url_downloads_the_object_without_credentials(s3_store: MinioObjectStore) -> None:
    s3_store.put_bytes("reports/job-1/report.html", b"<h1>report</h1>")

    url = s3_store.presigned_get_url("reports/job-1/report.html", timedelta(minutes=10))
    assert url is not None
    response = httpx.get(url)

    assert response.status_code == 200
    assert response.content == b"<h1>report</h1>"
    assert response.headers["content-type"] == "text/html"
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["600"]
    assert "X-Amz-Signature" in query


def test_explicit_content_type_and_etag_are_kept(s3_store: MinioObjectStore) -> None:
    put = s3_store.put_bytes("exports/model", b"onnx bytes", content_type="application/x-onnx")

    stat = s3_store.stat("exports/model")

    assert stat.content_type == "application/x-onnx"
    assert stat.etag is not None
    assert stat.etag == put.etag


def test_bucket_is_created_on_first_write(s3_server: str) -> None:
    store = _store_on(s3_server, f"temper-lazy-{uuid.uuid4().hex[:12]}")

    store.ping()
    assert list(store.list()) == []
    with pytest.raises(ObjectNotFound):
        store.stat("a/b")
    store.put_bytes("a/b", b"created")

    assert store.get_bytes("a/b") == b"created"
    store.delete("a/b")


def test_unreachable_server_raises_store_unavailable_quickly() -> None:
    store = _store_on(f"127.0.0.1:{_closed_loopback_port()}", "temper")

    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unreachable"):
        store.ping()
    elapsed = time.monotonic() - started
    with pytest.raises(StoreUnavailable):
        store.get_bytes("a/b")
    with pytest.raises(StoreUnavailable):
        store.put_bytes("a/b", b"x")

    # A health check must answer within a probe's timeout, not after minutes of retries.
    assert elapsed < 5.0


def test_description_names_endpoint_and_bucket_without_secrets() -> None:
    plain = MinioObjectStore("minio:9000", "key-id", "very-secret", "temper")
    tls = MinioObjectStore("s3.example.com", "key-id", "very-secret", "temper", secure=True)

    assert plain.description == "s3://minio:9000/temper"
    assert tls.description == "s3s://s3.example.com/temper"
    assert "very-secret" not in plain.description + tls.description
