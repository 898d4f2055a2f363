"""Cancel during training: the worker's callback sees it, saves, stops; the job ends `cancelled`
within seconds with the last checkpoint kept."""

from __future__ import annotations

import time
from pathlib import Path

from shared.settings import Settings
from tests.support.stack import running_stack
from tests.support.tickets import write_rows


def test_cancel_during_training_keeps_the_last_checkpoint(
    embedded_settings: Settings, tiny_base_model: Path, tmp_path: Path
) -> None:
    with running_stack(embedded_settings) as stack:
        stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
        _, key = stack.new_team()
        headers = stack.headers(key)
        train = stack.upload(key, write_rows(tmp_path / "train.jsonl", 200), name="train").json()
        spec = {
            "base_model": "tiny-bert",
            "train_dataset_id": train["id"],
            # Long enough that it is still training when the cancel arrives.
            "hyperparameters": {"epochs": 100, "batch_size": 4, "max_seq_length": 16, "save_steps": 10},
        }
        job_id = stack.client.post("/v1/jobs", json=spec, headers=headers).json()["id"]

        stack.wait_for_checkpoint(key, job_id)

        asked = time.monotonic()
        cancel = stack.client.post(f"/v1/jobs/{job_id}/cancel", headers=headers)
        assert cancel.status_code == 202 and cancel.json()["status"] == "cancelling"
        job = stack.wait_for(key, job_id, timeout_s=30)
        took = time.monotonic() - asked
        assert job["status"] == "cancelled", job
        assert took < 20, f"cancel took {took:.1f}s"
        assert job["result"]["train"]["status"] == "cancelled"
        assert job["progress"]["step"] < job["progress"]["total_steps"]

        checkpoints = stack.client.get(f"/v1/jobs/{job_id}/checkpoints", headers=headers).json()
        # The callback saved one more checkpoint at the step where it stopped, and it was kept.
        assert checkpoints[-1]["step"] >= job["progress"]["step"] - 10
        assert any(file["path"].endswith("model.safetensors") for file in checkpoints[-1]["files"])
        transitions = [
            (event["from_status"], event["to_status"])
            for event in stack.client.get(f"/v1/jobs/{job_id}/events?limit=1000", headers=headers).json()[
                "items"
            ]
            if event["type"] == "transition"
        ]
        assert transitions[-2:] == [("training", "cancelling"), ("cancelling", "cancelled")]
