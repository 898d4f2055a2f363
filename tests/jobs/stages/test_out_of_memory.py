"""A job that does not fit is never retried forever: a real Celery worker in a cgroup v1 memory group
with a small limit, a train stage the kernel OOM-kills, and the job failed `out_of_memory` after the
attempt cap with its peak and estimate; the same worker then fits the next job (batch "auto") and
finishes it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api.main import create_app
from shared.db.session import create_db_engine, create_session_factory, session_scope
from shared.settings import Settings
from shared.workers.repository import WorkerRepository
from tests.support.llm_fixtures import ChatPair, alpaca_rows
from tests.support.memory_cgroup import memory_group, oom_kills, stop_worker, worker_in
from tests.support.stack import Stack, migrate
from tests.support.tiny_llama import build_tiny_chat_llama

LIMIT_BYTES = 2 * 1024**3


@pytest.fixture
def memory_group_2g() -> Iterator[Path]:
    with memory_group(LIMIT_BYTES) as group:
        yield group


@pytest.fixture(scope="module")
def base_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [f"{row['instruction']} {row['output']}" for row in alpaca_rows("train")[:200]]
    return build_tiny_chat_llama(tmp_path_factory.mktemp("base-llama"), texts)


def _upload(stack: Stack, key: str, path: Path, pairs: list[ChatPair]) -> str:
    path.write_text(
        "".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in pairs)
    )
    response = stack.upload(key, path, name=path.stem, task="instruction")
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_an_oom_killed_stage_fails_out_of_memory_and_the_worker_takes_the_next_job(
    embedded_settings: Settings, memory_group_2g: Path, base_llama: Path, tmp_path: Path
) -> None:
    settings = embedded_settings.model_copy(
        update={
            "heartbeat_interval": timedelta(seconds=1),
            "max_stage_attempts": 2,
            "worker_advertise_interval": timedelta(seconds=2),
            "worker_capacity_cache": timedelta(seconds=0),
        }
    )
    migrate(settings)
    settings.data_root.mkdir(parents=True, exist_ok=True)
    log = settings.data_root / "worker.log"
    worker = worker_in(memory_group_2g, settings, log, app="tests.support.oom_worker")
    try:
        with TestClient(create_app(settings)) as client:
            stack = Stack(settings=settings, client=client, worker_log=log, worker=worker)
            stack.register_base_model("balloon-llama", f"local:{base_llama}", task_family="causal-lm")
            stack.register_base_model("tiny-llama", f"local:{base_llama}", task_family="causal-lm")
            _, key = stack.new_team()
            pairs = [(row["instruction"], row["output"]) for row in alpaca_rows("train")[:24]]
            train_id = _upload(stack, key, tmp_path / "train.jsonl", pairs)

            # The worker advertises the group's limit, not the host's memory.
            session_factory = create_session_factory(create_db_engine(settings.resolved_database_url))
            deadline = time.monotonic() + 120
            advertised = None
            while advertised is None and time.monotonic() < deadline:
                with session_scope(session_factory) as session:
                    rows = WorkerRepository(session).list_seen_since(datetime(2000, 1, 1, tzinfo=UTC))
                    advertised = (
                        (rows[0].memory_total_bytes, rows[0].memory_limited_by, rows[0].queues)
                        if rows
                        else None
                    )
                time.sleep(0.5)
            assert advertised == (LIMIT_BYTES, "cgroup", ["default", "evaluate", "export", "train"]), (
                advertised
            )

            spec = {
                "task": "causal-lm",
                "method": "lora",
                "train_dataset_id": train_id,
                "evaluation": None,
                "hyperparameters": {"epochs": 1, "max_seq_length": 64},
            }
            headers = stack.headers(key)
            hog = client.post("/v1/jobs", json={**spec, "base_model": "balloon-llama"}, headers=headers)
            assert hog.status_code == 201, hog.text
            failed = stack.wait_for(key, hog.json()["id"], timeout_s=300)
            assert failed["status"] == "failed", failed
            assert failed["error"]["code"] == "out_of_memory", failed["error"]
            message = failed["error"]["message"]
            assert "OOM killer" in message and "peak memory seen" in message and "estimate" in message, (
                message
            )
            assert oom_kills(memory_group_2g) == 2  # the first run and its one retry; never a third
            events = client.get(f"/v1/jobs/{hog.json()['id']}/events?limit=1000", headers=headers).json()[
                "items"
            ]
            assert "train restarted (attempt 2) after an OOM kill" in [event["message"] for event in events]
            assert worker.poll() is None  # the main process survived; only its pool process was killed

            fitted = client.post("/v1/jobs", json={**spec, "base_model": "tiny-llama"}, headers=headers)
            assert fitted.status_code == 201, fitted.text
            done = stack.wait_for(key, fitted.json()["id"], timeout_s=300)
            assert done["status"] == "succeeded", done
            chosen = done["result"]["train"]["auto_batch"]
            assert chosen["per_device_batch_size"] * chosen["gradient_accumulation_steps"] == 16
            ran = done["spec"]["hyperparameters"]
            assert ran["batch_size"] == chosen["per_device_batch_size"]
            assert ran["gradient_accumulation_steps"] == chosen["gradient_accumulation_steps"]
    finally:
        stop_worker(worker)
