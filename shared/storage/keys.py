"""Rules for object keys and prefixes, shared by every backend so that the key layout is the same.

A key is a "/"-separated relative path. The rules keep keys portable between S3 and a local
directory: a key that S3 accepts but that would escape the local root (`..`), collapse on disk
(empty or `.` segments) or mean something else on another OS (backslashes) is refused everywhere.
"""

from __future__ import annotations

from shared.storage.errors import InvalidKey

# S3's own limit, in UTF-8 bytes.
MAX_KEY_BYTES = 1024


def validate_key(key: str) -> str:
    """Return `key` unchanged when it names an object, else raise `InvalidKey`."""
    if not isinstance(key, str) or not key:
        raise InvalidKey(str(key), "a key must be a non-empty string")
    if key.endswith("/"):
        raise InvalidKey(key, "a key must not end with '/' (that names a prefix, not an object)")
    _check_segments(key, key.split("/"))
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` unchanged when it is usable for listing, else raise `InvalidKey`.

    A prefix is matched as a plain string, as S3 does: "runs/a" matches "runs/a/x" and "runs/ab".
    The empty prefix matches every key.
    """
    if not isinstance(prefix, str):
        raise InvalidKey(str(prefix), "a prefix must be a string")
    if not prefix:
        return prefix
    segments = prefix.split("/")
    if segments[-1] == "":
        segments = segments[:-1]
    _check_segments(prefix, segments)
    return prefix


def directory_prefix(prefix: str) -> str:
    """The prefix of everything "inside" `prefix` taken as a directory: "" or ending with "/"."""
    validate_prefix(prefix)
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def deletable_prefix(prefix: str) -> str:
    """`directory_prefix(prefix)`, refusing the empty prefix: it would name the whole store."""
    directory = directory_prefix(prefix)
    if not directory:
        raise InvalidKey(prefix, "refusing to delete every object in the store")
    return directory


def _check_segments(original: str, segments: list[str]) -> None:
    if original.startswith("/"):
        raise InvalidKey(original, "must not start with '/'")
    if "\\" in original:
        raise InvalidKey(original, "must not contain backslashes")
    if any(ord(char) < 0x20 or char == "\x7f" for char in original):
        raise InvalidKey(original, "must not contain control characters")
    if len(original.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(original, f"longer than {MAX_KEY_BYTES} bytes")
    for segment in segments:
        if segment == "":
            raise InvalidKey(original, "must not contain empty segments ('//')")
        if segment in (".", ".."):
            raise InvalidKey(original, f"must not contain {segment!r} segments")
