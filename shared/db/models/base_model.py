from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, Timestamps, UUIDPrimaryKey


class BaseModelEntry(UUIDPrimaryKey, Timestamps, Base):
    """A base model in the catalog that admins fill. (Named to stay clear of pydantic's BaseModel.)

    `source` is where the weights are: `local:/abs/path`, `package:<python package>` for a model
    that ships inside an installed package, or `store:<object-store prefix>`.
    """

    __tablename__ = "base_models"

    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    task_family: Mapped[str] = mapped_column(sa.String(50))
    source: Mapped[str] = mapped_column(sa.String(1000))
    description: Mapped[str | None] = mapped_column(sa.Text())
    # `config.model_type` of the weights (llama, bert, ...), read at registration: what a spec can
    # be checked against before any worker loads the model.
    model_type: Mapped[str | None] = mapped_column(sa.String(100))
    # The architecture's shape numbers and the parameter count (`shared.base_models.files`), read at
    # registration without the weights: submit estimates a job's memory from them without touching
    # the object store. None for a row registered before it was kept (the train stage still checks).
    shape: Mapped[dict[str, Any] | None] = mapped_column(default=None)
