"""What a stage needs from the outside world: the database, the object store, scratch space.

One per worker process, built at worker boot. Stages reach the database only through the run handle
(`shared.jobs.run.JobRun`) made from it.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings
from shared.storage.base import ObjectStore


@dataclass
class StageContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    store: ObjectStore
    # Where Triton reads models: a bucket in production, a directory on the embedded default.
    model_repository: ObjectStore

    def job_dir(self, job_id: uuid.UUID) -> Path:
        path = self.settings.work_dir / "jobs" / str(job_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cache_dir(self) -> Path:
        path = self.settings.work_dir / "cache"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clean_job_dir(self, job_id: uuid.UUID) -> None:
        shutil.rmtree(self.settings.work_dir / "jobs" / str(job_id), ignore_errors=True)
