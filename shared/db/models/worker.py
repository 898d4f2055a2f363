from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDPrimaryKey


class Worker(UUIDPrimaryKey, Timestamps, Base):
    """A Celery worker as it advertises itself (`shared.workers.registration`): what it consumes and
    the memory and devices a stage on it gets. A row whose `seen_at` is old is a worker that went
    away; readers ignore it (`shared.workers.capacity`)."""

    __tablename__ = "workers"

    # Celery's node name (celery@host), unique per running worker.
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    hostname: Mapped[str] = mapped_column(sa.String(255))
    queues: Mapped[list[Any]] = mapped_column(default=list)
    concurrency: Mapped[int] = mapped_column(sa.Integer(), default=1)
    # The memory a stage process can use: the host's, or the cgroup's limit when one is set.
    memory_total_bytes: Mapped[int] = mapped_column(sa.BigInteger())
    memory_available_bytes: Mapped[int] = mapped_column(sa.BigInteger())
    # "cgroup" when a cgroup memory limit set the figures above, "host" otherwise.
    memory_limited_by: Mapped[str] = mapped_column(sa.String(20))
    # CUDA devices: [{"index", "name", "memory_total_bytes"}]; empty on a CPU worker.
    devices: Mapped[list[Any]] = mapped_column(default=list)
    seen_at: Mapped[datetime] = mapped_column(index=True)
