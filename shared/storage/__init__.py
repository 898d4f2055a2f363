"""Object storage: one interface (`ObjectStore`), a local-directory and a MinIO/S3 backend."""

from shared.storage.base import ObjectInfo, ObjectStore
from shared.storage.errors import (
    IncompleteStream,
    InvalidKey,
    ObjectNotFound,
    ObjectTooLarge,
    StorageError,
    StoreUnavailable,
)
from shared.storage.factory import open_object_store

__all__ = [
    "IncompleteStream",
    "InvalidKey",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectTooLarge",
    "StorageError",
    "StoreUnavailable",
    "open_object_store",
]
