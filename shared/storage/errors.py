"""Errors of the object store, independent of which backend raised them.

Each error carries a stable `code` so that the API layer can render it in the project's error
envelope without knowing about storage internals.
"""

from __future__ import annotations

from shared.errors import TransientError


class StorageError(Exception):
    """Base of every object-store failure."""

    code = "storage_error"


class ObjectNotFound(StorageError):
    code = "object_not_found"

    def __init__(self, key: str) -> None:
        super().__init__(f"no object at key {key!r}")
        self.key = key


class StoreUnavailable(TransientError, StorageError):
    """The store cannot be reached or refuses our credentials; retrying later may help."""

    code = "store_unavailable"


class ObjectTooLarge(StorageError):
    code = "object_too_large"

    def __init__(self, limit: int, received: int) -> None:
        super().__init__(f"upload exceeds the limit of {limit} bytes ({received} bytes read before stopping)")
        self.limit = limit
        self.received = received


class InvalidKey(StorageError, ValueError):
    code = "invalid_key"

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"invalid object key {key!r}: {reason}")
        self.key = key
        self.reason = reason


class IncompleteStream(StorageError):
    """A stream announced a length and ended before delivering it; nothing was stored."""

    code = "incomplete_stream"

    def __init__(self, key: str, expected: int, received: int) -> None:
        super().__init__(f"stream for {key!r} ended after {received} of {expected} announced bytes")
        self.key = key
        self.expected = expected
        self.received = received
