from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.db.models import BaseModelEntry


class BaseModelRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, entry_id: uuid.UUID) -> BaseModelEntry | None:
        return self.session.get(BaseModelEntry, entry_id)

    def get_by_name(self, name: str) -> BaseModelEntry | None:
        return self.session.scalar(sa.select(BaseModelEntry).where(BaseModelEntry.name == name))

    def list(self) -> list[BaseModelEntry]:
        return list(self.session.scalars(sa.select(BaseModelEntry).order_by(BaseModelEntry.name)))

    def add(self, entry: BaseModelEntry) -> BaseModelEntry:
        self.session.add(entry)
        self.session.flush()
        return entry
