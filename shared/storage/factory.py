"""Open the object store that a settings URL names.

    file:///var/lib/temper/objects   (or a plain path)    -> LocalObjectStore
    s3://minio:9000/temper           (plain HTTP)          -> MinioObjectStore
    s3s://s3.example.com:443/temper  (TLS)                 -> MinioObjectStore

Credentials are passed separately, never in the URL, so that the URL can be logged and shown in
health output as it is.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from shared.storage.base import ObjectStore
from shared.storage.errors import StoreUnavailable
from shared.storage.local import LocalObjectStore
from shared.storage.s3 import MinioObjectStore

if TYPE_CHECKING:
    from shared.settings import Settings

_S3_SCHEMES = {"s3": False, "s3s": True}


def open_configured_stores(settings: Settings) -> tuple[ObjectStore, ObjectStore]:
    """The object store and the model repository that the settings name (one set of credentials)."""

    def secret(value) -> str | None:
        return value.get_secret_value() if value is not None else None

    credentials = {
        "access_key": secret(settings.object_store_access_key),
        "secret_key": secret(settings.object_store_secret_key),
        "region": settings.object_store_region,
        "public_url": settings.object_store_public_url,
    }
    return (
        open_object_store(settings.resolved_object_store_url, **credentials),
        open_object_store(settings.resolved_model_repository_url, **credentials),
    )


def open_object_store(
    url: str,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
    public_url: str | None = None,
) -> ObjectStore:
    """`public_url` (http(s)://host:port) is where browsers reach an S3 store, for presigned URLs."""
    parts = urlsplit(url)
    if parts.scheme in _S3_SCHEMES:
        return _open_s3(url, access_key, secret_key, region, public_url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"object store URL {url!r} names a remote host; file:// URLs must be local")
        return LocalObjectStore(Path(unquote(parts.path)))
    if parts.scheme == "":
        return LocalObjectStore(Path(url).absolute())
    raise ValueError(
        f"unsupported object store URL {url!r}: use file:///path, a plain path, "
        "s3://host:port/bucket or s3s://host:port/bucket"
    )


def _open_s3(
    url: str,
    access_key: str | None,
    secret_key: str | None,
    region: str | None,
    public_url: str | None = None,
) -> MinioObjectStore:
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ValueError("put object store credentials in settings, not in the URL")
    if not parts.hostname:
        raise ValueError(f"object store URL {url!r} has no host")
    bucket = parts.path.strip("/")
    if not bucket or "/" in bucket:
        raise ValueError(f"object store URL {url!r} must name exactly one bucket: s3://host:port/bucket")
    if (access_key is None) != (secret_key is None):
        raise ValueError("give both an access key and a secret key, or neither for anonymous access")
    public_endpoint, public_secure = _public_endpoint(public_url) if public_url else (None, False)
    return MinioObjectStore(
        endpoint=parts.netloc,
        access_key=access_key,
        secret_key=secret_key,
        bucket=bucket,
        secure=_S3_SCHEMES[parts.scheme],
        region=region,
        public_endpoint=public_endpoint,
        public_secure=public_secure,
    )


def _public_endpoint(public_url: str) -> tuple[str, bool]:
    """("host:port", TLS?) from `http(s)://host:port`; a path is refused (S3 addresses the bucket)."""
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"object store public URL {public_url!r} must be http(s)://host[:port]")
    if parts.path.strip("/") or parts.query or parts.username is not None:
        raise ValueError(f"object store public URL {public_url!r} must be only http(s)://host[:port]")
    return parts.netloc, parts.scheme == "https"


def ensure_configured_buckets(settings: Settings, wait: timedelta = timedelta(minutes=2)) -> list[str]:
    """Create the object store's and the model repository's buckets (or folders) where missing.

    Run once before the services start (compose `buckets`, the Helm hook job): Triton started with
    `--model-repository=s3://…` exits when its bucket is missing, and it is otherwise created only by
    the first publish. Waits up to `wait` for the store to answer. Returns the stores' descriptions.
    """
    deadline = time.monotonic() + wait.total_seconds()
    ready = []
    for store in open_configured_stores(settings):
        while True:
            try:
                if isinstance(store, MinioObjectStore):
                    store.ensure_bucket()
                elif isinstance(store, LocalObjectStore):
                    store.root.mkdir(parents=True, exist_ok=True)
                break
            except StoreUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        ready.append(store.description)
    return ready
