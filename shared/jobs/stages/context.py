"""What a stage needs from the outside world: the database, the object store, scratch space.

One per worker process, built at worker boot. Stages reach the database only through the run handle
(`shared.jobs.run.JobRun`) made from it.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings
from shared.storage.base import ObjectStore

log = structlog.get_logger(__name__)

# In a job's scratch folder: the task id of the run that owns the folder now.
OWNER_FILE = ".owner"


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

    def claim_job_dir(self, job_id: uuid.UUID, task_id: str | None) -> None:
        """Mark the job's scratch folder as this run's: the run that took the stage last owns it.

        A run the reaper took the stage from (its worker seemed dead, but was only slow) may still
        finish on this machine while the new run works in the same folder; the mark tells its
        `clean_job_dir` that the folder is no longer its to delete.
        """
        if task_id is None:
            return
        owner = self.job_dir(job_id) / OWNER_FILE
        staged = owner.with_name(f"{OWNER_FILE}.{uuid.uuid4().hex}")
        staged.write_text(task_id)
        staged.replace(owner)  # atomic: a reader sees the old owner or the new one, never half

    def cache_dir(self) -> Path:
        path = self.settings.work_dir / "cache"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clean_job_dir(self, job_id: uuid.UUID, task_id: str | None = None) -> bool:
        """Delete the job's scratch folder, unless another run has claimed it since `task_id` did
        (then it is that run's, and stays). Returns whether it was deleted."""
        path = self.settings.work_dir / "jobs" / str(job_id)
        if task_id is not None:
            try:
                owner = (path / OWNER_FILE).read_text()
            except FileNotFoundError:
                owner = task_id  # never claimed (or already deleted): nobody else's
            if owner != task_id:
                log.info(
                    "scratch folder kept: another run took the stage over",
                    job_id=str(job_id),
                    task_id=task_id,
                    owner=owner,
                )
                return False
        shutil.rmtree(path, ignore_errors=True)
        return True
