"""The reaper (a celery beat task) in a running stack: a job whose worker was killed between two
stages is sent on and finishes; a stage that no worker ever takes fails the job with `worker_lost`.

Beat runs inside the worker (`temper up` does the same) with thresholds of seconds, so the reaper
acts while the test watches. The logs are JSON, as in a container, to check that the task's log
lines carry the API request that started the job.
"""

from __future__ import annotations

import json
import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.support.broker_probe import drop_queued_messages
from tests.support.stack import Stack, running_stack, stack_worker
from tests.support.tickets import write_rows

pytestmark = pytest.mark.timeout(240)

FAST_REAPER = {
    "reaper_interval": timedelta(seconds=1),
    "heartbeat_interval": timedelta(seconds=1),
    "stage_pickup_timeout": timedelta(seconds=3),
    "heartbeat_timeout": timedelta(seconds=30),
    "log_json": True,
}


def submit(stack: Stack, tiny_base_model: Path, tmp_path: Path, request_id: str) -> tuple[str, str, str]:
    stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
    team_id, key = stack.new_team()
    train = stack.upload(key, write_rows(tmp_path / "train.jsonl", 40), name="train").json()
    spec = {
        "base_model": "tiny-bert",
        "train_dataset_id": train["id"],
        "evaluation": None,
        "hyperparameters": {"epochs": 1, "batch_size": 8, "max_seq_length": 16},
    }
    headers = {**stack.headers(key), "x-request-id": request_id}
    response = stack.client.post("/v1/jobs", json=spec, headers=headers)
    assert response.status_code == 201, response.text
    return team_id, key, response.json()["id"]


def messages(stack: Stack, key: str, job_id: str) -> list[str]:
    page = stack.client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}, headers=stack.headers(key))
    return [event["message"] or "" for event in page.json()["items"]]


def json_log_lines(stack: Stack) -> list[dict]:
    assert stack.worker_log is not None
    lines = []
    for line in stack.worker_log.read_text().splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


def test_a_stage_no_worker_takes_fails_the_job_with_worker_lost_and_its_logs_carry_the_request(
    services_settings: Settings, tiny_base_model: Path, tmp_path: Path
) -> None:
    settings = services_settings.model_copy(update={**FAST_REAPER, "max_stage_attempts": 2})
    # On Redis: the embedded filesystem broker can hand a worker a half-written message file.
    # The worker serves the default queue only: validate runs, nobody ever takes train.
    with running_stack(settings, queues="default", with_beat=True) as stack:
        team_id, key, job_id = submit(stack, tiny_base_model, tmp_path, request_id="req-reaper-1")

        job = stack.wait_for(key, job_id, timeout_s=120)

        assert job["status"] == "failed", job
        assert job["error"]["code"] == "worker_lost" and job["error"]["stage"] == "train"
        assert "train gave up after 2 attempts" in job["error"]["message"]
        events = messages(stack, key, job_id)
        assert any(
            message.startswith("no worker took train for")
            and message.endswith("re-enqueued (attempt 2 of 2)")
            for message in events
        ), events
        started = [
            line
            for line in json_log_lines(stack)
            if line.get("event") == "stage task started" and line.get("job_id") == job_id
        ]
        assert started, "the validate task logged no JSON line with the job id"
        assert started[0]["request_id"] == "req-reaper-1"
        assert started[0]["team_id"] == team_id and started[0]["stage"] == "validate"


def test_a_worker_killed_between_stages_is_recovered_by_the_reaper(
    embedded_settings: Settings, tiny_base_model: Path, tmp_path: Path
) -> None:
    settings = embedded_settings.model_copy(update=FAST_REAPER)
    with running_stack(settings, with_worker=False) as stack:
        with stack_worker(stack, queues="default") as first:
            _, key, job_id = submit(stack, tiny_base_model, tmp_path, request_id="req-reaper-2")
            stack.wait_for(key, job_id, statuses={"training"}, timeout_s=120)
            # Validate committed and the worker dies, all of it, before the train task is out: the
            # message never reaches a queue (here: it is removed from the embedded broker).
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
        drop_queued_messages(settings)

        with stack_worker(stack, with_beat=True):
            job = stack.wait_for(key, job_id, timeout_s=180)

        assert job["status"] == "succeeded", (job["error"], messages(stack, key, job_id))
        events = messages(stack, key, job_id)
        assert any(
            message.startswith("no worker took train for")
            and message.endswith("re-enqueued (attempt 2 of 3)")
            for message in events
        ), events
