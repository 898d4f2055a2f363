"""The train workers that are running now and the memory each offers a stage, cached per process
for a few seconds: submit reads them on every request and they change slowly."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from shared.db.base import utcnow
from shared.workers.repository import WorkerRepository


@dataclass(frozen=True)
class WorkerCapacity:
    name: str
    queues: list[str]
    memory_total_bytes: int
    devices: list[dict[str, Any]] = field(default_factory=list)
    # What a stage would have on it once its own stages are done (`shared.workers.host.free_for_stages`);
    # None: only the total is known.
    memory_free_bytes: int | None = None

    @property
    def capacity_bytes(self) -> int:
        """What one training process gets: its largest device's memory on a GPU worker; on a CPU
        worker the memory it has free for a stage (the host's other tenants hold the rest: a job
        that needs more than that is killed however large the machine's total is)."""
        if self.devices:
            return max(int(device["memory_total_bytes"]) for device in self.devices)
        if self.memory_free_bytes is None:
            return self.memory_total_bytes
        return min(self.memory_total_bytes, self.memory_free_bytes)


_cache: dict[str, tuple[float, list[WorkerCapacity]]] = {}
_lock = threading.Lock()


def fresh_workers(session: Session, stale_after: timedelta, cache_for: timedelta) -> list[WorkerCapacity]:
    """Workers seen within `stale_after`, as read at most `cache_for` ago (per database)."""
    database = str(session.get_bind().engine.url)
    now = time.monotonic()
    with _lock:
        cached = _cache.get(database)
    if cached is not None and now - cached[0] < cache_for.total_seconds():
        return cached[1]
    rows = WorkerRepository(session).list_seen_since(utcnow() - stale_after)
    workers = [
        WorkerCapacity(
            row.name,
            list(row.queues),
            row.memory_total_bytes,
            list(row.devices),
            memory_free_bytes=row.memory_available_bytes,
        )
        for row in rows
    ]
    with _lock:
        _cache[database] = (now, workers)
    return workers


def forget_cached() -> None:
    """Drop the cache (a test that registers a worker and submits at once)."""
    with _lock:
        _cache.clear()
