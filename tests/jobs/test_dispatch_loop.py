"""An API process's dispatch passes, coalesced: a burst of submits costs a couple of passes and
still admits every job it may, each answer after the pass that covers it; resuming a queue with
many jobs waiting answers before any of them is admitted, and the passes that follow admit them in
bounded transactions."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import Job
from shared.db.outbox import DispatchJobs, outbox
from shared.jobs import dispatch_loop
from shared.jobs.dispatch import Dispatcher, DispatchPolicy
from shared.jobs.dispatch_loop import ADMISSIONS_PER_PASS
from shared.settings import Settings
from tests.support.stack import Stack, running_stack
from tests.support.tickets import write_rows

SLOTS = 1000


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def stack(
    request: pytest.FixtureRequest, embedded_settings: Settings, tiny_base_model: Path
) -> Iterator[Stack]:
    """The API without a worker, with room for every job these tests submit."""
    update: dict[str, object] = {"dispatch_slots": SLOTS, "max_concurrent_jobs_per_team": SLOTS}
    if request.param == "postgres":
        update["database_url"] = request.getfixturevalue("postgres_url")
    with running_stack(embedded_settings.model_copy(update=update), with_worker=False) as stack:
        stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
        yield stack


class CountedPasses:
    """Stands in for nothing: wraps the real pass (`dispatch_in`) to count the passes the loop runs
    and, while `hold` is clear, to hold the next one at its start, before its transaction opens."""

    def __init__(self, real: Callable[..., list[uuid.UUID]]) -> None:
        self.real = real
        self.started = 0
        self.hold = threading.Event()
        self.hold.set()
        self.holding = threading.Event()

    def __call__(self, *args: object, **kwargs: object) -> list[uuid.UUID]:
        self.started += 1
        if not self.hold.is_set():
            self.holding.set()
            assert self.hold.wait(60), "the test never released the held pass"
        return self.real(*args, **kwargs)


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> CountedPasses:
    counted = CountedPasses(dispatch_loop.dispatch_in)
    monkeypatch.setattr(dispatch_loop, "dispatch_in", counted)
    return counted


def session_factory(stack: Stack) -> sessionmaker[Session]:
    return stack.client.app.state.session_factory  # type: ignore[attr-defined, no-any-return]


def admitted(stack: Stack, job_ids: list[str]) -> int:
    with session_factory(stack)() as session:
        query = sa.select(sa.func.count()).where(
            Job.id.in_([uuid.UUID(job_id) for job_id in job_ids]), Job.admitted_at.is_not(None)
        )
        return session.scalar(query) or 0


def test_a_burst_of_submits_costs_a_few_passes_and_admits_every_job(
    stack: Stack, passes: CountedPasses, tmp_path: Path
) -> None:
    _, key = stack.new_team()
    train_id = stack.upload(key, write_rows(tmp_path / "train.jsonl", 30), name="train").json()["id"]
    body = {"base_model": "tiny-bert", "train_dataset_id": train_id}
    burst = 24

    def submit(_: int) -> dict:
        response = stack.client.post("/v1/jobs", json=body, headers=stack.headers(key))
        assert response.status_code == 201, response.text
        return response.json()

    # The first submit's pass is held at its start until every submit of the burst has committed
    # and asked for its pass.
    loop = stack.client.app.state.dispatch_loop  # type: ignore[attr-defined]
    passes.hold.clear()
    before, asked_before = passes.started, loop.requested
    with ThreadPoolExecutor(max_workers=burst) as pool:
        pending = [pool.submit(submit, index) for index in range(burst)]
        assert passes.holding.wait(60)
        deadline = time.monotonic() + 60
        while loop.requested - asked_before < burst and time.monotonic() < deadline:
            time.sleep(0.01)
        passes.hold.set()
        created = [future.result() for future in pending]

    # Inline, the burst would have cost one pass per submit; coalesced, the held pass and one
    # serving every submit that came meanwhile.
    ran = passes.started - before
    assert loop.requested - asked_before == burst
    assert ran == 2, ran
    # Each answer waited for a pass that began after its commit: every job is admitted already.
    assert admitted(stack, [job["id"] for job in created]) == burst


def test_resume_with_many_jobs_waiting_answers_before_admitting_any(
    stack: Stack, passes: CountedPasses, tmp_path: Path
) -> None:
    _, key = stack.new_team()
    admin = stack.headers()
    train_id = stack.upload(key, write_rows(tmp_path / "train.jsonl", 30), name="train").json()["id"]
    paused = stack.client.post("/v1/queue/pause", json={"reason": "maintenance"}, headers=admin)
    assert paused.status_code == 200, paused.text
    waiting = 2 * ADMISSIONS_PER_PASS + 10
    body = {"base_model": "tiny-bert", "train_dataset_id": train_id}
    job_ids = []
    for _ in range(waiting):
        response = stack.client.post("/v1/jobs", json=body, headers=stack.headers(key))
        assert response.status_code == 201, response.text
        job_ids.append(response.json()["id"])
    assert admitted(stack, job_ids) == 0

    passes.hold.clear()
    started = passes.started
    resumed = stack.client.post("/v1/queue/resume", headers=admin)
    # The answer came while the dispatch thread could not run a single pass: nothing was admitted
    # inside the request, and the answer did not wait for the pass it asked for.
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["paused"], resumed.json()["waiting"], resumed.json()["running"]) == (
        False,
        waiting,
        0,
    )
    assert admitted(stack, job_ids) == 0
    assert passes.holding.wait(60)  # the pass the resume asked for is there, held at its start
    passes.hold.set()

    # The loop admits them all, in passes of at most ADMISSIONS_PER_PASS jobs, each asking for
    # the next; the pass asked for here runs after them.
    loop = stack.client.app.state.dispatch_loop  # type: ignore[attr-defined]
    while admitted(stack, job_ids) < waiting and passes.started - started < 10:
        assert loop.request_and_wait()
    assert admitted(stack, job_ids) == waiting
    assert passes.started - started >= -(-waiting // ADMISSIONS_PER_PASS)


def test_resuming_asks_for_a_pass_that_nobody_waits_for(stack: Stack) -> None:
    settings = stack.settings
    with session_factory(stack)() as session:
        dispatcher = Dispatcher(session, DispatchPolicy.from_settings(settings))
        dispatcher.set_paused(True, "maintenance")
        assert outbox(session).effects == []
        dispatcher.set_paused(False)
        assert outbox(session).effects == [DispatchJobs(wait=False)]
        session.rollback()
