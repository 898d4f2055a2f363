"""The SDK against the real API over HTTP (uvicorn on loopback, the embedded default, no worker):
every resource, its typed answers, its page iterators and its typed errors."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.db.models import Job as JobRow
from shared.db.session import create_db_engine, create_session_factory, session_scope
from shared.registry.service import RegistryService
from temper_client import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    RetryPolicy,
    Temper,
)
from temper_client.types import Dataset, JobEvent
from tests.support.fault_proxy import fault_proxy
from tests.support.live_api import LiveApi
from tests.support.tickets import write_rows


@pytest.fixture
def admin(live_api: LiveApi) -> Iterator[Temper]:
    with Temper(live_api.url, live_api.admin_key) as client:
        yield client


@pytest.fixture
def team_key(admin: Temper, tiny_base_model: Path) -> str:
    """A team's API key, with the tiny BERT in the catalog."""
    admin.base_models.register("tiny-bert", source=f"local:{tiny_base_model}")
    created = admin.teams.create(f"team-{uuid.uuid4().hex[:8]}", max_concurrent_jobs=20)
    return admin.keys.create(created.id, name="ci").key


@pytest.fixture
def team(live_api: LiveApi, team_key: str) -> Iterator[Temper]:
    with Temper(live_api.url, team_key) as client:
        yield client


def upload_tickets(client: Temper, folder: Path, rows: int = 30, name: str = "tickets") -> Dataset:
    return client.datasets.upload(write_rows(folder / f"{name}.jsonl", rows), name=name)


def test_scoped_keys_rotation_and_the_audit_log(admin: Temper, live_api: LiveApi) -> None:
    team = admin.teams.create("research")
    reader = admin.keys.create(team.id, name="dash", scopes=["read"])
    assert reader.scopes == ["read"] and reader.rate_limit_per_minute is None
    rotated = admin.keys.rotate(reader.id, grace_seconds=60)
    assert rotated.scopes == ["read"] and rotated.previous.id == reader.id and rotated.previous.revoked_at
    with Temper(live_api.url, rotated.key) as member:
        assert list(member.jobs.list()) == []
        with pytest.raises(Forbidden) as forbidden:
            member.webhooks.create("http://127.0.0.1:9/h")
        assert forbidden.value.details == {"required_scope": "write", "key_scope": "read"}

    events = list(admin.audit.list(team_id=None, action="admin.key", page_size=1))
    assert [event.action for event in events] == ["admin.key.rotate", "admin.key.create"]
    assert events[0].target_id == str(reader.id) and events[0].details["new_key_id"] == str(rotated.id)
    assert [event.action for event in admin.audit.list(action="admin.team.create")] == ["admin.team.create"]


def test_teams_keys_and_the_catalog(admin: Temper, live_api: LiveApi, tiny_base_model: Path) -> None:
    team = admin.teams.create("research", max_concurrent_jobs=3)
    assert isinstance(team.id, uuid.UUID) and team.max_concurrent_jobs == 3
    assert "research" in [t.name for t in admin.teams.list()]
    with pytest.raises(Conflict) as taken:
        admin.teams.create("research")
    assert taken.value.code == "conflict" and taken.value.details == {"field": "name"}

    issued = admin.keys.create(team.id, name="ci")
    assert issued.key.startswith("tmp_") and not issued.is_admin
    assert [key.id for key in admin.keys.list(team.id)] == [issued.id]

    entry = admin.base_models.register("tiny-bert", source=f"local:{tiny_base_model}", description="tiny")
    with Temper(live_api.url, issued.key) as member:
        assert [model.name for model in member.base_models.list()] == [entry.name]
        with pytest.raises(Forbidden) as forbidden:
            member.teams.list()
        assert forbidden.value.status_code == 403 and forbidden.value.code == "forbidden"

        revoked = admin.keys.revoke(issued.id)
        assert revoked.revoked_at is not None
        with pytest.raises(NotAuthenticated) as refused:
            member.datasets.list()
        assert refused.value.code == "not_authenticated" and refused.value.message


def test_datasets_upload_streams_with_progress_and_reports_bad_rows(team: Temper, tmp_path: Path) -> None:
    # About 200 KB: several of httpx's 64 KiB chunks, so progress moves more than once.
    path = write_rows(tmp_path / "big.jsonl", 3000)
    size = path.stat().st_size
    progress: list[tuple[int, int]] = []

    dataset = team.datasets.upload(
        path, name="big", on_progress=lambda sent, total: progress.append((sent, total))
    )

    assert dataset.row_count == 3000 and dataset.labels == ["billing", "login", "shipping"]
    assert dataset.size_bytes == size and dataset.report["labels"]["class_count"] == 3
    assert len(progress) >= 3
    assert [sent for sent, _ in progress] == sorted(sent for sent, _ in progress)
    assert progress[-1] == (size, size)

    assert [d.id for d in team.datasets.list()] == [dataset.id]
    assert team.datasets.get(dataset.id).sha256 == dataset.sha256

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"text": "fine", "label": "a"}\n{"text": "", "label": "b"}\n{"text": "ok", "label": "b"}\n'
    )
    with pytest.raises(InvalidInput) as refused:
        team.datasets.upload(bad, name="bad")
    first = refused.value.details["errors"][0]
    assert first["row"] == 2 and "empty" in first["reason"]

    team.datasets.delete(dataset.id)
    with pytest.raises(NotFound):
        team.datasets.get(dataset.id)


def test_jobs_pages_events_watch_and_cancel(team: Temper, tmp_path: Path) -> None:
    train = upload_tickets(team, tmp_path)
    spec = {"base_model": "tiny-bert", "train_dataset_id": str(train.id)}
    jobs = [team.jobs.create(spec, name=f"job-{index}") for index in range(5)]
    assert all(job.status == "queued" and job.progress.percent == 0 for job in jobs)

    again = team.jobs.create(spec, idempotency_key="same")
    assert team.jobs.create(spec, idempotency_key="same").id == again.id
    jobs.append(again)

    # Page by page, two at a time: every job once, newest first.
    pages = team.jobs.list_page(limit=2)
    assert len(pages.items) == 2 and pages.next_cursor is not None
    assert [job.id for job in team.jobs.list(page_size=2)] == [job.id for job in reversed(jobs)]

    cancelled = team.jobs.cancel(jobs[0].id)
    assert cancelled.status == "cancelled" and cancelled.finished
    with pytest.raises(Conflict) as refused:
        team.jobs.cancel(jobs[0].id)
    assert refused.value.code == "illegal_transition"
    assert {job.id for job in team.jobs.list(status="queued")} == {job.id for job in jobs[1:]}

    history = list(team.jobs.events(jobs[0].id, page_size=1))
    assert [(event.type, event.to_status) for event in history] == [
        ("created", "queued"),
        ("admitted", None),
        ("transition", "cancelling"),
        ("transition", "cancelled"),
    ]
    # The job has finished: the stream replays its events and ends.
    assert [event.id for event in team.jobs.watch(jobs[0].id)] == [event.id for event in history]
    assert [event.id for event in team.jobs.watch(jobs[0].id, after=history[0].id)] == [
        event.id for event in history[1:]
    ]

    assert team.jobs.get(jobs[1].id).spec["base_model"] == "tiny-bert"
    assert team.jobs.metrics(jobs[1].id) == []
    assert team.jobs.checkpoints(jobs[1].id) == []
    assert team.jobs.artifacts(jobs[1].id) == []
    with pytest.raises(NotFound):
        team.jobs.evaluation(jobs[1].id)
    with pytest.raises(NotFound):
        team.jobs.get(uuid.uuid4())
    with pytest.raises(InvalidInput) as invalid:
        team.jobs.create({**spec, "hyperparameters": {"epochs": 0}})
    assert invalid.value.details["errors"][0]["field"] == "hyperparameters.epochs"


def test_watch_resumes_from_the_last_event_after_the_stream_drops(
    team: Temper, team_key: str, live_api: LiveApi, tmp_path: Path
) -> None:
    train = upload_tickets(team, tmp_path)
    job = team.jobs.create({"base_model": "tiny-bert", "train_dataset_id": str(train.id)})
    host_port = live_api.url.removeprefix("http://")
    with fault_proxy(host_port) as proxy:
        watcher = Temper(
            f"http://{proxy.address}", team_key, retry=RetryPolicy(backoff_s=0.1, max_backoff_s=0.5)
        )
        seen: list[JobEvent] = []
        failure: list[BaseException] = []

        def follow() -> None:
            try:
                seen.extend(watcher.jobs.watch(job.id))
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        _wait_until(lambda: len(seen) >= 1)  # "created" (and "admitted"): the stream is open
        # Drop the stream and refuse new connections for a while; the job is cancelled meanwhile,
        # so its events are written while the watcher cannot hear them.
        proxy.fail_for(1.0)
        team.jobs.cancel(job.id)
        thread.join(timeout=30)
        watcher.close()

    assert not thread.is_alive() and failure == []
    assert proxy.refused_connections >= 1
    history = list(team.jobs.events(job.id))
    assert [event.id for event in seen] == [event.id for event in history]
    assert seen[-1].to_status == "cancelled"


def test_studies_create_list_get_and_cancel(team: Temper, tmp_path: Path) -> None:
    train = upload_tickets(team, tmp_path, name="train")
    test = upload_tickets(team, tmp_path, name="test")
    base = {"base_model": "tiny-bert", "train_dataset_id": str(train.id), "test_dataset_id": str(test.id)}
    studies = [
        team.studies.create(
            {
                "name": f"lr-{index}",
                "base_spec": base,
                "variants": {"mode": "list", "overrides": [{"hyperparameters.learning_rate": 1e-3}]},
            }
        )
        for index in range(3)
    ]
    assert studies[0].variant_count == 2 and [v.position for v in studies[0].variants] == [0, 1]
    assert [study.id for study in team.studies.list(page_size=2)] == [s.id for s in reversed(studies)]

    fetched = team.studies.get(studies[0].id)
    assert fetched.base_spec["base_model"] == "tiny-bert" and fetched.variants[0].job_id is not None
    cancelled = team.studies.cancel(studies[0].id)
    assert cancelled.status in ("cancelling", "cancelled")
    with pytest.raises(InvalidInput):
        team.studies.create({"base_spec": base, "variants": {"mode": "list", "overrides": []}})
    with pytest.raises(NotFound):
        team.studies.get(uuid.uuid4())


def test_models_versions_promote_and_rollback(team: Temper, live_api: LiveApi, tmp_path: Path) -> None:
    assert team.models.list() == []
    with pytest.raises(NotFound) as missing:
        team.models.get("tickets")
    assert missing.value.code == "not_found" and "tickets" in missing.value.message

    # Two published versions, recorded as the publish stage does (no worker runs here).
    train = upload_tickets(team, tmp_path)
    jobs = [
        team.jobs.create({"base_model": "tiny-bert", "train_dataset_id": str(train.id)}) for _ in range(2)
    ]
    engine = create_db_engine(live_api.settings.resolved_database_url)
    factory = create_session_factory(engine, _NoEffects())
    with session_scope(factory) as session:
        owner = session.get(JobRow, jobs[0].id)
        assert owner is not None
        registry = RegistryService(session)
        model = registry.ensure_model(owner.team_id, "team", "tickets", "text-classification")
        for job in jobs:
            version = registry.reserve_version(model, job.id)
            registry.record_version(model, version, job.id, ["onnx_optimized"], {"job_id": str(job.id)})
    engine.dispose()

    assert [model.name for model in team.models.list()] == ["tickets"]
    detail = team.models.get("tickets")
    assert detail.versions == [1, 2] and detail.production_version is None
    with pytest.raises(Conflict) as no_production:
        team.models.predict("tickets", ["where is my parcel"])
    assert "production" in no_production.value.message

    versions = team.models.versions("tickets")
    assert [(v.version, v.job_id) for v in versions] == [(1, jobs[0].id), (2, jobs[1].id)]
    assert team.models.promote("tickets", 1).production_version == 1
    assert team.models.promote("tickets", 2).production_version == 2
    assert team.models.rollback("tickets").production_version == 1
    with pytest.raises(NotFound):
        team.models.promote("tickets", 9)


def test_queue_pause_resume_and_quotas(admin: Temper, team: Temper, tmp_path: Path) -> None:
    paused = admin.queue.pause("maintenance")
    assert paused.paused and paused.paused_reason == "maintenance" and paused.slots >= 1
    train = upload_tickets(team, tmp_path)
    job = team.jobs.create({"base_model": "tiny-bert", "train_dataset_id": str(train.id)})
    waiting = team.jobs.get(job.id)
    assert waiting.queue is not None and (waiting.queue.position, waiting.queue.reason) == (1, "paused")
    state = admin.queue.get()
    [row] = [row for row in state.teams if row.waiting]
    team_id = row.team_id
    assert (state.waiting, row.running) == (1, 0)

    quota = admin.queue.set_quota(team_id, max_concurrent_jobs=2, gpu_hours_per_period=5)
    assert (quota.max_concurrent_jobs, quota.gpu_hours_per_period, quota.waiting) == (2, 5, 1)
    assert admin.queue.quota(team_id).gpu_hours_per_period == 5
    assert not admin.queue.resume().paused
    # The resume answers before the dispatch pass that admits the job (run by the API's dispatch
    # thread right after): wait for it rather than assume it.
    deadline = time.monotonic() + 30
    started = team.jobs.get(job.id)
    while started.admitted_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
        started = team.jobs.get(job.id)
    assert (
        started.admitted_at is not None and started.queue is not None and started.queue.reason == "starting"
    )
    with pytest.raises(Forbidden):
        team.queue.get()


def test_health_and_readiness(live_api: LiveApi) -> None:
    with Temper(live_api.url) as anonymous:
        assert anonymous.health() is True
        ready = anonymous.ready()
        assert ready.ready and set(ready.checks) == {"database", "broker", "object_store"}


class _NoEffects:
    def run(self, effects: object) -> None:
        pass


def _wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
