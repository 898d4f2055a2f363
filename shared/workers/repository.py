"""Every query on the `workers` table."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.db.models import Worker


class WorkerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get_by_name(self, name: str) -> Worker | None:
        return self.session.scalars(sa.select(Worker).where(Worker.name == name)).one_or_none()

    def add(self, worker: Worker) -> Worker:
        self.session.add(worker)
        self.session.flush()
        return worker

    def list_seen_since(self, since: datetime) -> list[Worker]:
        return list(self.session.scalars(sa.select(Worker).where(Worker.seen_at >= since)))
