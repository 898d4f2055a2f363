"""A database with one team, one base model, one dataset and a job in it, without API or worker:
for tests of the services, the run handle and the stage runner on their own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from shared.db.base import Base
from shared.db.models import BaseModelEntry, Dataset, Job, Team
from shared.db.outbox import Effect
from shared.db.session import create_db_engine, create_session_factory, session_scope
from shared.jobs.dispatch import Dispatcher, DispatchPolicy
from shared.jobs.service import JobService
from shared.jobs.spec import JobSpec
from shared.jobs.stages.context import StageContext
from shared.settings import Settings
from shared.storage.local import LocalObjectStore

# Every job is admitted at once: these tests are about what happens after admission.
UNLIMITED = DispatchPolicy(
    slots=1_000_000, max_concurrent_jobs=1_000_000, gpu_hours_per_period=None, period=timedelta(days=30)
)


@dataclass
class RecordingEffects:
    """An EffectRunner that keeps what it was asked to run, and which rows were visible then."""

    session_factory: sessionmaker[Session] | None = None
    effects: list[Effect] = field(default_factory=list)
    job_statuses_seen: list[str] = field(default_factory=list)

    def run(self, effects: Sequence[Effect]) -> None:
        self.effects.extend(effects)
        if self.session_factory is not None:
            # A fresh session sees only committed rows: proof the effects run after the commit.
            with self.session_factory() as session:
                self.job_statuses_seen.extend(str(job.status) for job in session.query(Job).all())


@dataclass
class JobDatabase:
    context: StageContext
    effects: RecordingEffects
    team_id: uuid.UUID
    base_model: str
    dataset_id: uuid.UUID

    @property
    def session_factory(self) -> sessionmaker[Session]:
        return self.context.session_factory

    def submit(self, **spec: Any) -> uuid.UUID:
        """A queued job, admitted by the dispatcher (the outbox's effects are recorded, then cleared)."""
        with session_scope(self.session_factory) as session:
            job_spec = JobSpec.model_validate(
                {"base_model": self.base_model, "train_dataset_id": str(self.dataset_id), **spec}
            )
            job_id = JobService(session).submit(self.team_id, job_spec).job.id
            Dispatcher(session, UNLIMITED).run_pass()
        self.effects.effects.clear()
        return job_id

    def job(self, job_id: uuid.UUID) -> Job:
        with self.session_factory() as session:
            job = session.get(Job, job_id)
            assert job is not None
            return job

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.session_factory) as session:
            yield session


def job_database(tmp_path: Path, base_model_dir: Path, database_url: str | None = None) -> JobDatabase:
    settings = Settings(environment="test", data_dir=tmp_path / "var", database_url=database_url)
    engine = create_db_engine(settings.resolved_database_url)
    Base.metadata.create_all(engine)
    effects = RecordingEffects()
    factory = create_session_factory(engine, effects)
    effects.session_factory = factory
    store = LocalObjectStore(tmp_path / "objects")
    context = StageContext(
        settings=settings,
        session_factory=factory,
        store=store,
        model_repository=LocalObjectStore(tmp_path / "model_repository"),
    )
    with session_scope(factory) as session:
        team = Team(name=f"team-{uuid.uuid4().hex[:6]}")
        session.add(team)
        base = BaseModelEntry(
            name="tiny", task_family="text-classification", source=f"local:{base_model_dir}"
        )
        session.add(base)
        session.flush()
        dataset = Dataset(
            team_id=team.id,
            name="rows",
            task="text-classification",
            format="jsonl",
            filename="rows.jsonl",
            sha256="0" * 64,
            size_bytes=10,
            object_key="datasets/" + "0" * 64,
            row_count=100,
            labels=["a", "b"],
            column_mapping={},
            report={},
        )
        session.add(dataset)
        session.flush()
        ids = team.id, dataset.id
    return JobDatabase(context=context, effects=effects, team_id=ids[0], base_model="tiny", dataset_id=ids[1])
