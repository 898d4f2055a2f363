"""Open the object store that a settings URL names.

    file:///var/lib/temper/objects   (or a plain path)    -> LocalObjectStore
    s3://minio:9000/temper           (plain HTTP)          -> MinioObjectStore
    s3s://s3.example.com:443/temper  (TLS)                 -> MinioObjectStore

Credentials are passed separately, never in the URL, so that the URL can be logged and shown in
health output as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from shared.storage.base import ObjectStore
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
) -> ObjectStore:
    parts = urlsplit(url)
    if parts.scheme in _S3_SCHEMES:
        return _open_s3(url, access_key, secret_key, region)
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
    url: str, access_key: str | None, secret_key: str | None, region: str | None
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
    return MinioObjectStore(
        endpoint=parts.netloc,
        access_key=access_key,
        secret_key=secret_key,
        bucket=bucket,
        secure=_S3_SCHEMES[parts.scheme],
        region=region,
    )
