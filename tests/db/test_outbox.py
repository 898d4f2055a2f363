"""The outbox: effects registered in a transaction run after its commit and never after a rollback.

Run against the real effect runner of a process (`ProcessEffects`): a Celery app on the embedded
default's SQLite broker, whose waiting messages show what was sent, and a local object store.
"""

from __future__ import annotations

import functools
import uuid
from pathlib import Path
from typing import Any

import pytest

from shared.datasets.service import DatasetService
from shared.db.models import Dataset
from shared.db.outbox import DeleteObject, EnqueueStage, outbox
from shared.db.session import create_session_factory, session_scope
from shared.effects import ProcessEffects
from shared.jobs.dispatch import dispatch_in
from shared.jobs.service import JobService
from shared.jobs.spec import JobSpec
from shared.queue import create_celery_app
from shared.settings import Settings
from tests.support.broker_probe import queued_messages
from tests.support.job_rows import UNLIMITED, JobDatabase, job_database


class Refused(Exception):
    """Something later in the request went wrong, after the services registered their effects."""


@pytest.fixture
def db(tmp_path: Path, tiny_base_model: Path) -> JobDatabase:
    database = job_database(tmp_path, tiny_base_model)
    # The real runner of a process instead of the recording one.
    settings = Settings(environment="test", data_dir=tmp_path / "var")
    effects = ProcessEffects(celery=create_celery_app(settings), store=database.context.store)
    engine = database.session_factory.kw["bind"]
    database.context.session_factory = create_session_factory(engine, effects)
    effects.dispatch = functools.partial(dispatch_in, database.context.session_factory, UNLIMITED)
    return database


def sent_messages(db: JobDatabase) -> list[dict[str, Any]]:
    return queued_messages(db.context.settings)


def stored_dataset(db: JobDatabase) -> Dataset:
    key = f"datasets/{uuid.uuid4().hex}"
    db.context.store.put_bytes(key, b'{"text": "x", "label": "a"}\n')
    with db.session() as session:
        dataset = Dataset(
            team_id=db.team_id,
            name="to-delete",
            task="text-classification",
            format="jsonl",
            filename="x.jsonl",
            sha256=uuid.uuid4().hex * 2,
            size_bytes=1,
            object_key=key,
            row_count=1,
            labels=["a"],
            column_mapping={},
            report={},
        )
        session.add(dataset)
    return dataset


def test_a_committed_submit_sends_its_validate_task(db: JobDatabase) -> None:
    """The submit's commit runs a dispatch pass, which admits the job; its commit sends the task."""
    spec = JobSpec.model_validate({"base_model": db.base_model, "train_dataset_id": str(db.dataset_id)})
    with session_scope(db.session_factory) as session:
        JobService(session).submit(db.team_id, spec)
        assert sent_messages(db) == []  # nothing leaves before the commit
    assert len(sent_messages(db)) == 1


def test_a_transaction_that_rolls_back_sends_nothing_and_deletes_nothing(db: JobDatabase) -> None:
    dataset = stored_dataset(db)
    spec = JobSpec.model_validate({"base_model": db.base_model, "train_dataset_id": str(db.dataset_id)})
    with pytest.raises(Refused), session_scope(db.session_factory) as session:
        JobService(session).submit(db.team_id, spec)
        DatasetService(session, db.context.store, db.context.settings.work_dir).delete(db.team_id, dataset.id)
        assert outbox(session).effects[-1] == DeleteObject(dataset.object_key)
        raise Refused
    assert sent_messages(db) == []
    assert db.context.store.exists(dataset.object_key)
    with db.session() as session:
        assert session.get(Dataset, dataset.id) is not None

    # The same delete committed removes the row, then the object.
    with session_scope(db.session_factory) as session:
        DatasetService(session, db.context.store, db.context.settings.work_dir).delete(db.team_id, dataset.id)
    assert not db.context.store.exists(dataset.object_key)


def test_a_commit_with_effects_and_no_runner_fails_loudly(db: JobDatabase) -> None:
    engine = db.session_factory.kw["bind"]
    factory = create_session_factory(engine)
    with pytest.raises(RuntimeError, match="no runner"), session_scope(factory) as session:
        outbox(session).add(EnqueueStage(uuid.uuid4(), "validate"))
