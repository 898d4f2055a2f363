"""The registry on its own: versions per job, and promote/rollback moving the alias with the
Triton load put on the outbox (run after the commit, dropped with a rollback)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from shared.db.outbox import LoadModelVersion
from shared.errors import Conflict, NotFound
from shared.registry.service import RegistryService
from tests.support.job_rows import JobDatabase, job_database


@pytest.fixture
def db(tmp_path: Path, tiny_base_model: Path) -> JobDatabase:
    return job_database(tmp_path, tiny_base_model)


def publish_versions(db: JobDatabase, count: int) -> list[uuid.UUID]:
    jobs = [db.submit() for _ in range(count)]
    for job_id in jobs:
        with db.session() as session:
            registry = RegistryService(session)
            model = registry.ensure_model(db.team_id, "team", "tickets", "text-classification")
            version = registry.reserve_version(model, job_id)
            assert registry.reserve_version(model, job_id) == version  # a re-run stage gets the same
            registry.record_version(model, version, job_id, ["onnx_optimized"], {"job_id": str(job_id)})
    return jobs


def test_versions_are_numbered_per_model_and_one_per_job(db: JobDatabase) -> None:
    jobs = publish_versions(db, 2)
    with db.session() as session:
        versions = RegistryService(session).list_versions(db.team_id, "tickets")
        assert [(version.version, version.job_id) for version in versions] == [(1, jobs[0]), (2, jobs[1])]
        assert RegistryService(session).get_model(db.team_id, "tickets").repository_name == "team--tickets"


def test_promote_moves_the_alias_and_loads_on_triton_after_the_commit(db: JobDatabase) -> None:
    publish_versions(db, 2)
    with db.session() as session:
        registry = RegistryService(session)
        registry.promote(registry.get_model(db.team_id, "tickets"), 1)
        assert db.effects.effects == []  # not before the commit
    assert db.effects.effects == [LoadModelVersion("team--tickets", 1, ("onnx_optimized",))]

    with db.session() as session:
        registry = RegistryService(session)
        registry.promote(registry.get_model(db.team_id, "tickets"), 1)  # already production: nothing to do
    assert len(db.effects.effects) == 1


def test_a_promote_that_rolls_back_loads_nothing(db: JobDatabase) -> None:
    publish_versions(db, 1)
    with pytest.raises(RuntimeError), db.session() as session:
        registry = RegistryService(session)
        registry.promote(registry.get_model(db.team_id, "tickets"), 1)
        raise RuntimeError("the request failed later")
    assert db.effects.effects == []
    with db.session() as session:
        assert RegistryService(session).get_model(db.team_id, "tickets").production_version is None


def test_rollback_returns_to_the_previous_production_version(db: JobDatabase) -> None:
    publish_versions(db, 3)
    for version in (1, 3):
        with db.session() as session:
            registry = RegistryService(session)
            registry.promote(registry.get_model(db.team_id, "tickets"), version)
    with db.session() as session:
        registry = RegistryService(session)
        assert registry.rollback(registry.get_model(db.team_id, "tickets")) == 1
    assert db.effects.effects[-1] == LoadModelVersion("team--tickets", 1, ("onnx_optimized",))


def test_rollback_needs_an_earlier_production_version(db: JobDatabase) -> None:
    publish_versions(db, 2)
    with db.session() as session:
        registry = RegistryService(session)
        model = registry.get_model(db.team_id, "tickets")
        with pytest.raises(Conflict, match="no production version"):
            registry.rollback(model)
        registry.promote(model, 2)
        with pytest.raises(Conflict, match="no earlier production version"):
            registry.rollback(model)


def test_unknown_models_and_versions_are_not_found(db: JobDatabase) -> None:
    publish_versions(db, 1)
    with db.session() as session:
        registry = RegistryService(session)
        with pytest.raises(NotFound):
            registry.get_model(db.team_id, "nope")
        with pytest.raises(NotFound, match="no version 7"):
            registry.promote(registry.get_model(db.team_id, "tickets"), 7)
        assert registry.production_version(db.team_id, "tickets") is None
