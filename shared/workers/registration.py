"""A worker records itself in the `workers` table when it starts and keeps its row fresh.

Its main process does it, from a thread of its own, every `worker_advertise_interval`: the memory
figures move (the host's available memory, a cgroup's usage), and `seen_at` is how a reader tells a
running worker from one that went away without a word (a SIGKILL, a lost node).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.orm import Session, sessionmaker

from shared.db.base import utcnow
from shared.db.models import Worker
from shared.db.session import session_scope
from shared.workers.host import Device, HostResources, cuda_devices, free_for_stages, host_memory
from shared.workers.repository import WorkerRepository

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class WorkerIdentity:
    """What does not change while a worker runs."""

    name: str
    queues: list[str]
    concurrency: int
    hostname: str = socket.gethostname()


def advertise(session: Session, identity: WorkerIdentity, resources: HostResources) -> Worker:
    """Insert or refresh the worker's row (the caller commits)."""
    workers = WorkerRepository(session)
    row = workers.get_by_name(identity.name)
    if row is None:
        row = workers.add(
            Worker(
                name=identity.name,
                hostname=identity.hostname,
                memory_total_bytes=0,
                memory_available_bytes=0,
                memory_limited_by="host",
                seen_at=utcnow(),
            )
        )
    row.hostname = identity.hostname
    row.queues = list(identity.queues)
    row.concurrency = identity.concurrency
    row.memory_total_bytes = resources.memory.total_bytes
    row.memory_available_bytes = (
        resources.free_bytes if resources.free_bytes is not None else resources.memory.available_bytes
    )
    row.memory_limited_by = resources.memory.limited_by
    row.devices = [device.as_dict() for device in resources.devices]
    row.seen_at = utcnow()
    return row


class Advertiser:
    """The thread that keeps one worker's row fresh; `stop` ends it (at warm shutdown)."""

    def __init__(
        self, session_factory: sessionmaker[Session], identity: WorkerIdentity, interval: timedelta
    ) -> None:
        self.session_factory = session_factory
        self.identity = identity
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-advertiser", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def refresh(self, devices: list[Device]) -> None:
        memory = host_memory()
        resources = HostResources(memory=memory, devices=devices, free_bytes=free_for_stages(memory))
        try:
            with session_scope(self.session_factory) as session:
                advertise(session, self.identity, resources)
        except Exception as exc:  # the next interval is the retry; a stale row only means "not counted"
            log.warning(
                "worker row not refreshed", worker=self.identity.name, error=f"{type(exc).__name__}: {exc}"
            )

    def _run(self) -> None:
        # CUDA devices do not change while the worker runs: asked once, before the first row.
        devices = cuda_devices()
        self.refresh(devices)
        while not self._stop.wait(self.interval.total_seconds()):
            self.refresh(devices)
