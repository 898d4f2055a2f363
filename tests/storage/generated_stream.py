"""A file-like object that generates its bytes as they are read, so tests can stream large
objects without ever holding them in memory (and notice if the code under test tries to)."""

from __future__ import annotations

import hashlib
import random

# An odd length, so that consecutive multipart parts do not repeat the same bytes.
_BLOCK_BYTES = 1024 * 1024 + 13
# What one read() hands out at most, like a socket: callers must loop.
_MAX_READ_BYTES = 1024 * 1024


class GeneratedStream:
    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.position = 0
        self._block = random.Random(seed).randbytes(_BLOCK_BYTES)
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            raise AssertionError("the whole generated stream was requested at once")
        count = min(size, _MAX_READ_BYTES, self.size - self.position)
        offset = self.position % _BLOCK_BYTES
        chunk = self._block[offset : offset + count]
        if len(chunk) < count:
            chunk += self._block[: count - len(chunk)]
        self.position += count
        self._digest.update(chunk)
        return chunk

    def sha256_so_far(self) -> str:
        """The sha256 of the bytes handed out so far (of the whole stream once fully read)."""
        return self._digest.hexdigest()
