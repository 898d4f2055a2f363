"""The production object store: one bucket on MinIO (or any S3 API), through the `minio` client.

Uploads run part by part on the calling thread, so memory stays bounded by a few `PART_SIZE`
buffers however large the checkpoint or dataset is.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, cast

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError

from shared.observability import OBJECT_STORE_ERRORS
from shared.storage.base import ObjectInfo, ObjectStore, default_content_type
from shared.storage.errors import (
    IncompleteStream,
    ObjectNotFound,
    StorageError,
    StoreUnavailable,
)
from shared.storage.keys import deletable_prefix, validate_key, validate_prefix

# Multipart part size. For a stream of unknown length minio holds up to three copies of a part at
# once (the previous part, the next one, and its one-byte-lookahead concatenation), measured at
# ~30 MiB peak for 10 MiB parts and ~48 MiB for 16 MiB parts. S3 allows 10,000 parts, so a
# stream of unknown length may reach 100 GiB.
PART_SIZE = 10 * 1024 * 1024

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket"})
# The server answered but will not serve us: for a caller this is an outage, not a bad request.
_REFUSED_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
)


class MinioObjectStore(ObjectStore):
    """Objects in one bucket. The bucket is created on the first write, or by `ensure_bucket()`."""

    def __init__(
        self,
        endpoint: str,
        access_key: str | None,
        secret_key: str | None,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        *,
        connect_timeout: timedelta = timedelta(seconds=5),
        read_timeout: timedelta = timedelta(minutes=5),
        max_retries: int = 3,
        public_endpoint: str | None = None,
        public_secure: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.secure = secure
        http_client = urllib3.PoolManager(
            timeout=urllib3.Timeout(
                connect=connect_timeout.total_seconds(), read=read_timeout.total_seconds()
            ),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(
                total=max_retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http_client,
        )
        self._region = region
        self._bucket_ready = False
        # Presigned URLs are for browsers, which may reach the store by another name than the
        # services do (compose: `minio:9000` inside, `localhost:9000` outside). The signature covers
        # the host, so they are signed by a client for the public address; signing is local (the
        # region is given, so the client never asks that address for it).
        self._presign_client = (
            Minio(
                public_endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=public_secure,
                region=region or "us-east-1",
            )
            if public_endpoint
            else self._client
        )

    @property
    def description(self) -> str:
        return f"{'s3s' if self.secure else 's3'}://{self.endpoint}/{self.bucket}"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{validate_prefix(key)}"

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists; safe to call from several processes at once."""
        with self._translated_errors():
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket, location=self._region)
                except S3Error as error:
                    if error.code != "BucketAlreadyOwnedByYou":
                        raise
        self._bucket_ready = True

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        validate_key(key)
        self._ensure_bucket_once()
        with self._translated_errors():
            self._client.fput_object(
                self.bucket,
                key,
                str(path),
                content_type=content_type or default_content_type(key),
                part_size=PART_SIZE,
                num_parallel_uploads=1,
            )
        return self.stat(key)

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        length: int | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        validate_key(key)
        self._ensure_bucket_once()
        source: BinaryIO = cast(BinaryIO, _FullReads(stream))
        if length is not None:
            source = cast(BinaryIO, _ExactLengthReader(source, key, length))
        with self._translated_errors():
            self._client.put_object(
                self.bucket,
                key,
                source,
                length=-1 if length is None else length,
                content_type=content_type or default_content_type(key),
                part_size=PART_SIZE,
                # Parallel parts would each hold a PART_SIZE buffer; one keeps memory bounded.
                num_parallel_uploads=1,
            )
        return self.stat(key)

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        validate_key(key)
        with self._translated_errors(key):
            response = self._client.get_object(self.bucket, key)
            try:
                yield cast(BinaryIO, response)
            finally:
                response.close()
                response.release_conn()

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        with self._translated_errors(key):
            found = self._client.stat_object(self.bucket, key)
        return ObjectInfo(
            key=key,
            size=found.size or 0,
            etag=found.etag or None,
            last_modified=found.last_modified,
            content_type=found.content_type,
        )

    def list(self, prefix: str = "", recursive: bool = True) -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        listing = self._client.list_objects(self.bucket, prefix=prefix or None, recursive=recursive)
        with self._translated_errors():
            try:
                for found in listing:
                    if found.is_dir:
                        continue
                    yield ObjectInfo(
                        key=cast(str, found.object_name),
                        size=found.size or 0,
                        etag=found.etag or None,
                        last_modified=found.last_modified,
                        # Listings do not carry content types; `stat` does.
                        content_type=None,
                    )
            except S3Error as error:
                # A bucket not created yet holds nothing, which is what a listing should say.
                if error.code != "NoSuchBucket":
                    raise

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._translated_errors():
            try:
                self._client.remove_object(self.bucket, key)
            except S3Error as error:
                if error.code not in _NOT_FOUND_CODES:
                    raise

    def delete_prefix(self, prefix: str) -> int:
        keys = [info.key for info in self.list(deletable_prefix(prefix))]
        with self._translated_errors():
            # remove_objects is lazy: the requests are sent while its errors are iterated.
            failures = list(self._client.remove_objects(self.bucket, (DeleteObject(key) for key in keys)))
        if failures:
            first = failures[0]
            raise StorageError(
                f"{len(failures)} objects under {prefix!r} could not be deleted "
                f"(first: {first.name!r}: {first.code} {first.message})"
            )
        return len(keys)

    def presigned_get_url(self, key: str, expires: timedelta) -> str | None:
        validate_key(key)
        with self._translated_errors(key):
            return self._presign_client.presigned_get_object(self.bucket, key, expires=expires)

    def ping(self) -> None:
        try:
            with self._translated_errors():
                self._client.bucket_exists(self.bucket)
        except StoreUnavailable:
            raise
        except StorageError as error:
            raise StoreUnavailable(str(error)) from error

    def _ensure_bucket_once(self) -> None:
        if not self._bucket_ready:
            self.ensure_bucket()

    @contextmanager
    def _translated_errors(self, key: str | None = None) -> Iterator[None]:
        """Turn minio and urllib3 failures into storage errors (counted; a missing object is an
        answer, not an error); `key` enables ObjectNotFound."""
        try:
            with self._translated(key):
                yield
        except ObjectNotFound:
            raise
        except StorageError as error:
            OBJECT_STORE_ERRORS.labels(
                kind="unavailable" if isinstance(error, StoreUnavailable) else "refused"
            ).inc()
            raise

    @contextmanager
    def _translated(self, key: str | None) -> Iterator[None]:
        try:
            yield
        except S3Error as error:
            if key is not None and error.code in _NOT_FOUND_CODES:
                raise ObjectNotFound(key) from error
            if error.code in _REFUSED_CODES:
                raise StoreUnavailable(
                    f"{self.description} refused the request ({error.code}): check the credentials"
                ) from error
            raise StorageError(f"{self.description}: {error.code}: {error.message}") from error
        except ServerError as error:
            raise StoreUnavailable(f"{self.description} failed: {error}") from error
        except InvalidResponseError as error:
            raise StoreUnavailable(f"{self.description} does not answer like an S3 server") from error
        except urllib3.exceptions.HTTPError as error:
            raise StoreUnavailable(f"{self.description} is unreachable: {error}") from error


class _FullReads:
    """Answers each `read(n)` with n bytes (fewer only at the end), gathering short reads linearly.

    minio builds a part by concatenating whatever each `read()` returns, which is quadratic in the
    number of reads: a request body arriving in 64 KiB chunks would be copied ~80 times per part.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        first = self._stream.read(size)
        if size < 0 or len(first) == size or not first:
            return first
        # BytesIO.getvalue() hands over its buffer without a copy, so a part exists once in memory.
        gathered = io.BytesIO()
        gathered.write(first)
        while gathered.tell() < size:
            chunk = self._stream.read(size - gathered.tell())
            if not chunk:
                break
            gathered.write(chunk)
        return gathered.getvalue()


class _ExactLengthReader:
    """Passes on exactly `length` bytes of a stream, failing clearly if the stream ends early."""

    def __init__(self, stream: BinaryIO, key: str, length: int) -> None:
        self._stream = stream
        self._key = key
        self._length = length
        self._received = 0

    def read(self, size: int = -1) -> bytes:
        remaining = self._length - self._received
        if remaining <= 0:
            return b""
        chunk = self._stream.read(remaining if size < 0 else min(size, remaining))
        if not chunk:
            raise IncompleteStream(self._key, expected=self._length, received=self._received)
        self._received += len(chunk)
        return chunk
