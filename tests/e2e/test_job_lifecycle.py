"""Upload → submit → validate → train → checkpoints → succeeded, through the REST API and a real
Celery worker process, on the embedded default and on Postgres + Redis + S3."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shared.settings import Settings
from tests.support.stack import Stack, running_stack
from tests.support.tickets import LABELS, write_rows


def run_lifecycle(stack: Stack, base_model_dir: Path, tmp_path: Path) -> None:
    stack.register_base_model("tiny-bert", f"local:{base_model_dir}")
    _, key = stack.new_team()
    train = stack.upload(key, write_rows(tmp_path / "train.jsonl", 90), name="tickets-train")
    assert train.status_code == 201, train.text
    test = stack.upload(key, write_rows(tmp_path / "test.jsonl", 30, offset=1000), name="tickets-test")
    assert test.status_code == 201, test.text
    assert train.json()["labels"] == sorted(LABELS)

    spec = {
        "base_model": "tiny-bert",
        "method": "full",
        "train_dataset_id": train.json()["id"],
        "test_dataset_id": test.json()["id"],
        "hyperparameters": {"epochs": 2, "batch_size": 8, "learning_rate": 5e-3, "max_seq_length": 32},
    }
    submitted = stack.client.post(
        "/v1/jobs", json=spec, headers={**stack.headers(key), "Idempotency-Key": "abc"}
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    # The same Idempotency-Key gives back the same job, not a second one.
    again = stack.client.post("/v1/jobs", json=spec, headers={**stack.headers(key), "Idempotency-Key": "abc"})
    assert again.status_code == 200 and again.json()["id"] == job_id
    assert submitted.json()["spec"]["hyperparameters"]["warmup_ratio"] == 0.0  # defaults stored
    assert submitted.json()["spec"]["validation_split"] == 0.1

    job = stack.wait_for(key, job_id, timeout_s=240)
    assert job["status"] == "succeeded", job
    assert job["progress"]["step"] == job["progress"]["total_steps"] > 0
    assert job["progress"]["percent"] == 100.0
    assert "eval_accuracy" in job["latest_metrics"]
    assert job["result"]["train"]["model_prefix"].endswith("/model")
    assert job["completed_stages"] == ["validate", "train", "evaluate"]

    events = stack.client.get(f"/v1/jobs/{job_id}/events?limit=1000", headers=stack.headers(key)).json()[
        "items"
    ]
    transitions = [
        (event["from_status"], event["to_status"]) for event in events if event["type"] == "transition"
    ]
    assert transitions == [
        ("queued", "validating"),
        ("validating", "training"),
        ("training", "evaluating"),
        ("evaluating", "succeeded"),
    ]

    metrics = stack.client.get(f"/v1/jobs/{job_id}/metrics", headers=stack.headers(key)).json()
    names = {series["name"] for series in metrics}
    assert {"train_loss", "learning_rate", "eval_loss", "eval_accuracy", "eval_f1_macro"} <= names

    checkpoints = stack.client.get(f"/v1/jobs/{job_id}/checkpoints", headers=stack.headers(key)).json()
    assert len(checkpoints) >= 1
    weights = [file for file in checkpoints[-1]["files"] if file["path"].endswith("model.safetensors")]
    assert weights, checkpoints[-1]["files"]
    url = weights[0]["download_url"]
    if url.startswith("http://testserver"):
        downloaded = stack.client.get(url, headers=stack.headers(key))
    else:
        downloaded = httpx.get(url)  # a presigned S3 URL needs no API key
    assert downloaded.status_code == 200
    assert len(downloaded.content) == weights[0]["size"] > 0

    artifacts = stack.client.get(f"/v1/jobs/{job_id}/artifacts", headers=stack.headers(key)).json()
    assert any(file["path"] == "model/config.json" for file in artifacts)

    # The evaluate stage scored the test dataset against the majority class.
    summary = job["result"]["evaluation"]
    assert summary["split"] == "test" and summary["rows"] == 30
    report = stack.client.get(f"/v1/jobs/{job_id}/evaluation", headers=stack.headers(key)).json()
    assert report["metrics"]["accuracy"] == summary["metrics"]["accuracy"]
    assert report["baseline_comparison"]["baseline"].startswith("majority class")
    page = stack.client.get(f"/v1/jobs/{job_id}/evaluation.html", headers=stack.headers(key))
    assert page.status_code == 200 and "<img" in page.text
    assert any(file["path"].startswith("evaluation/pictures/") for file in artifacts)

    # A gate the model cannot pass stops the job with gate_failed, the report still readable.
    gated = {**spec, "evaluation": {"gate": {"metric": "f1_macro", "min": 1.01}}}
    gated_id = stack.client.post("/v1/jobs", json=gated, headers=stack.headers(key)).json()["id"]
    failed = stack.wait_for(key, gated_id, timeout_s=240)
    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] == "gate_failed" and failed["error"]["stage"] == "evaluate"
    assert "f1_macro" in failed["error"]["message"]
    assert failed["result"]["evaluation"]["gate"]["passed"] is False


def test_lifecycle_embedded(embedded_settings: Settings, tiny_base_model: Path, tmp_path: Path) -> None:
    with running_stack(embedded_settings) as stack:
        run_lifecycle(stack, tiny_base_model, tmp_path)


@pytest.mark.services
def test_lifecycle_on_postgres_redis_s3(
    services_settings: Settings, tiny_base_model: Path, tmp_path: Path
) -> None:
    with running_stack(services_settings) as stack:
        run_lifecycle(stack, tiny_base_model, tmp_path)
