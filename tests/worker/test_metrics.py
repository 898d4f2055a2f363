"""A worker's Prometheus metrics: one endpoint for the main process and every pool process
(multiprocess mode), with what an operator watches for a job: stage durations, queue waits,
heartbeats and training throughput."""

from __future__ import annotations

import re
import socket
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from shared.settings import Settings
from tests.support.stack import Stack, running_stack, stack_worker
from tests.support.tickets import write_rows

pytestmark = pytest.mark.timeout(240)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample, whatever order its labels are printed in; 0 when absent."""
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match is None:
            continue
        printed = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(printed.get(key) == value for key, value in labels.items()):
            return float(match.group(2))
    return 0.0


def run_job(stack: Stack, tiny_base_model: Path, tmp_path: Path) -> None:
    stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
    _, key = stack.new_team()
    train = stack.upload(key, write_rows(tmp_path / "train.jsonl", 120), name="train").json()
    spec = {
        "base_model": "tiny-bert",
        "train_dataset_id": train["id"],
        "evaluation": None,
        # A few seconds of training, so that a heartbeat and progress reports land.
        "hyperparameters": {"epochs": 4, "batch_size": 4, "max_seq_length": 16},
    }
    job_id = stack.client.post("/v1/jobs", json=spec, headers=stack.headers(key)).json()["id"]
    assert stack.wait_for(key, job_id, timeout_s=180)["status"] == "succeeded"


def test_a_worker_serves_the_metrics_of_its_pool_processes(
    embedded_settings: Settings, tiny_base_model: Path, tmp_path: Path
) -> None:
    port = free_port()
    settings = embedded_settings.model_copy(
        update={
            "worker_metrics_port": port,
            "worker_metrics_address": "127.0.0.1",
            "heartbeat_interval": timedelta(seconds=1),
        }
    )
    multiprocess_dir = tmp_path / "prometheus"
    with (
        running_stack(settings, with_worker=False) as stack,
        stack_worker(stack, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(multiprocess_dir)}),
    ):
        run_job(stack, tiny_base_model, tmp_path)
        deadline = time.monotonic() + 30
        metrics = ""
        while time.monotonic() < deadline:
            try:
                metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                break
            except httpx.HTTPError:
                time.sleep(0.5)

    # Written by the pool process that ran the tasks, served by the main process.
    for stage in ("validate", "train"):
        assert sample(metrics, "temper_stage_duration_seconds_count", stage=stage, outcome="ok") >= 1, stage
        assert sample(metrics, "temper_queue_wait_seconds_count", stage=stage) >= 1, stage
    assert sample(metrics, "temper_heartbeats_total", stage="train") >= 1
    assert sample(metrics, "temper_train_samples_per_second", stage="train") > 0
    assert sample(metrics, "temper_job_transitions_total", from_status="training", to_status="succeeded") == 1
