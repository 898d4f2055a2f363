"""Stopping a worker mid-training: SIGTERM (a deploy, a scale-down) makes it finish the step, save
a checkpoint and hand the job back, and the next worker resumes from that checkpoint. A worker
that does not answer a cancel at all (here: frozen with SIGSTOP) has its task revoked (SIGKILL)
by the reaper once the grace period is over, and the job ends cancelled."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest

from shared.db.session import create_db_engine, create_session_factory
from shared.effects import ProcessEffects
from shared.jobs.reaper import ReaperPolicy, reap
from shared.queue import create_celery_app
from shared.settings import Settings
from shared.storage.factory import open_configured_stores
from tests.support.stack import Stack, running_stack, stack_worker
from tests.support.tickets import write_rows

pytestmark = pytest.mark.timeout(300)


def long_training(stack: Stack, tiny_base_model: Path, tmp_path: Path) -> tuple[str, str]:
    stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
    _, key = stack.new_team()
    train = stack.upload(key, write_rows(tmp_path / "train.jsonl", 120), name="train").json()
    spec = {
        "base_model": "tiny-bert",
        "train_dataset_id": train["id"],
        "evaluation": None,
        # Long enough that the signal lands mid-training however fast the machine is.
        "hyperparameters": {"epochs": 20, "batch_size": 4, "max_seq_length": 16, "save_steps": 20},
    }
    response = stack.client.post("/v1/jobs", json=spec, headers=stack.headers(key))
    assert response.status_code == 201, response.text
    return key, response.json()["id"]


def events(stack: Stack, key: str, job_id: str) -> list[dict]:
    page = stack.client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}, headers=stack.headers(key))
    return page.json()["items"]


def pool_processes(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def freeze_outside_a_write(pid: int, database: Path) -> None:
    """SIGSTOP `pid` at a moment it holds no write transaction on the SQLite file: a worker stuck
    in a training step, not one that also blocks every other writer (the API's cancel)."""
    for _ in range(200):
        os.kill(pid, signal.SIGSTOP)
        connection = sqlite3.connect(database, timeout=0.2, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.05)
        finally:
            connection.close()
    raise AssertionError("the worker never left the database alone long enough to freeze it")


def test_sigterm_mid_training_hands_the_job_back_and_the_next_worker_resumes(
    embedded_settings: Settings, tiny_base_model: Path, tmp_path: Path
) -> None:
    with running_stack(embedded_settings, with_worker=False) as stack:
        with stack_worker(stack) as first:
            key, job_id = long_training(stack, tiny_base_model, tmp_path)
            stack.wait_for_checkpoint(key, job_id)
            first.send_signal(signal.SIGTERM)
            # A warm shutdown: the worker exits by itself once the step is saved and handed back.
            assert first.wait(timeout=60) is not None

        handed_back = [event for event in events(stack, key, job_id) if event["data"].get("handed_back")]
        assert len(handed_back) == 1, events(stack, key, job_id)
        step = handed_back[0]["data"]["step"]
        assert handed_back[0]["message"] == f"worker shutting down; train handed back at step {step}"
        job = stack.client.get(f"/v1/jobs/{job_id}", headers=stack.headers(key)).json()
        assert job["status"] == "training" and job["error"] is None

        with stack_worker(stack):
            job = stack.wait_for(key, job_id, timeout_s=240)

        assert job["status"] == "succeeded", job
        # It resumed from the checkpoint saved at the hand-back, not from an older one.
        assert job["result"]["train"]["resumed_from"] == f"checkpoint-{step}"
        assert job["attempt"] == 2


def test_a_cancel_the_worker_does_not_answer_is_revoked_after_the_grace_period(
    embedded_settings: Settings, tiny_base_model: Path, tmp_path: Path
) -> None:
    settings = embedded_settings.model_copy(update={"cancel_grace": timedelta(seconds=2)})
    policy = ReaperPolicy.of(settings)
    store, model_repository = open_configured_stores(settings)
    effects = ProcessEffects(
        celery=create_celery_app(settings), store=store, model_repository=model_repository
    )
    engine = create_db_engine(settings.resolved_database_url)
    session_factory = create_session_factory(engine, effects)
    try:
        with running_stack(settings) as stack:
            key, job_id = long_training(stack, tiny_base_model, tmp_path)
            stack.wait_for_checkpoint(key, job_id)
            assert stack.worker is not None
            (busy,) = pool_processes(stack.worker.pid)
            database = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
            freeze_outside_a_write(busy, database)  # stuck: it will not see the cancel flag

            response = stack.client.post(f"/v1/jobs/{job_id}/cancel", headers=stack.headers(key))
            assert response.json()["status"] == "cancelling", response.text
            time.sleep(settings.cancel_grace.total_seconds() + 0.5)
            report = reap(session_factory, policy)

            assert [str(cancelled) for cancelled in report.cancelled] == [job_id]
            job = stack.client.get(f"/v1/jobs/{job_id}", headers=stack.headers(key)).json()
            assert job["status"] == "cancelled"
            assert any(
                (event["message"] or "").startswith("no worker answered the cancel within")
                for event in events(stack, key, job_id)
            )
            # The revoke reached the worker, which killed the stuck pool process.
            deadline = time.monotonic() + 30
            while alive(busy) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not alive(busy), "the stuck pool process was not killed"
    finally:
        engine.dispose()
