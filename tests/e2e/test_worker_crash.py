"""A worker process killed mid-training gives its task back (acks_late + reject_on_worker_lost);
the re-run finds the uploaded checkpoint, resumes from it, and counts the attempt."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from shared.settings import Settings
from tests.support.stack import running_stack
from tests.support.tickets import write_rows


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def test_killed_worker_child_resumes_from_checkpoint(
    embedded_settings: Settings, tiny_base_model: Path, tmp_path: Path
) -> None:
    with running_stack(embedded_settings) as stack:
        stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
        _, key = stack.new_team()
        headers = stack.headers(key)
        train = stack.upload(key, write_rows(tmp_path / "train.jsonl", 120), name="train").json()
        spec = {
            "base_model": "tiny-bert",
            "train_dataset_id": train["id"],
            "evaluation": None,
            # Long enough that the kill lands mid-training however fast the machine is.
            "hyperparameters": {"epochs": 20, "batch_size": 4, "max_seq_length": 16, "save_steps": 20},
        }
        job_id = stack.client.post("/v1/jobs", json=spec, headers=headers).json()["id"]

        checkpoints = stack.wait_for_checkpoint(key, job_id)
        uploaded_before_kill = max(checkpoint["step"] for checkpoint in checkpoints)
        assert stack.worker is not None
        for child in _children(stack.worker.pid):
            os.kill(child, signal.SIGKILL)

        job = stack.wait_for(key, job_id, timeout_s=240)
        assert job["status"] == "succeeded", job
        assert job["attempt"] == 2
        assert job["result"]["train"]["resumed_from"].startswith("checkpoint-")
        resumed_step = int(job["result"]["train"]["resumed_from"].removeprefix("checkpoint-"))
        # It resumed from the newest complete upload: at least the one seen before the kill.
        assert resumed_step >= uploaded_before_kill and resumed_step % 20 == 0
        assert resumed_step < job["progress"]["total_steps"]
        assert job["progress"]["step"] == job["progress"]["total_steps"]
        messages = [
            event["message"]
            for event in stack.client.get(f"/v1/jobs/{job_id}/events?limit=1000", headers=headers).json()[
                "items"
            ]
        ]
        assert "train restarted (attempt 2)" in messages
