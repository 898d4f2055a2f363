"""An ablation study through the REST API and a real Celery worker, on the tiny model.

Four variants run as jobs two at a time (the base, two learning rates, one that fails on a CPU
worker); a fifth is refused at creation. The study finishes by itself through the worker's
`studies.advance` task, ranks what succeeded, and shows each change against the base.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.support.stack import Stack, running_stack
from tests.support.tickets import write_rows

STUDY_TIMEOUT_S = 180


@pytest.fixture
def study_stack(embedded_settings: Settings, tiny_base_model: Path) -> Iterator[Stack]:
    with running_stack(embedded_settings) as stack:
        stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
        yield stack


def wait_for_study(stack: Stack, key: str, study_id: str) -> dict:
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    study: dict = {}
    while time.monotonic() < deadline:
        study = stack.client.get(f"/v1/studies/{study_id}", headers=stack.headers(key)).json()
        if study["status"] != "running":
            return study
        assert stack.worker is None or stack.worker.poll() is None, "the worker died"
        time.sleep(0.5)
    log = stack.worker_log.read_text()[-4000:] if stack.worker_log else ""
    raise AssertionError(f"study did not finish: {study}\nworker log:\n{log}")


def test_study_runs_to_completion_and_ranks_its_variants(study_stack: Stack, tmp_path: Path) -> None:
    stack = study_stack
    _, key = stack.new_team()
    train = stack.upload(key, write_rows(tmp_path / "train.jsonl", 60), name="tickets-train")
    test = stack.upload(key, write_rows(tmp_path / "test.jsonl", 30, offset=1000), name="tickets-test")
    assert train.status_code == 201 and test.status_code == 201
    base_spec = {
        "base_model": "tiny-bert",
        "method": "full",
        "train_dataset_id": train.json()["id"],
        "test_dataset_id": test.json()["id"],
        "hyperparameters": {"epochs": 2, "batch_size": 8, "learning_rate": 5e-3, "max_seq_length": 32},
        "evaluation": {"robustness": False, "bootstrap_resamples": 200},
    }
    body = {
        "name": "learning rate",
        "base_spec": base_spec,
        "variants": {
            "mode": "list",
            "overrides": [
                {"hyperparameters.learning_rate": 1e-4},
                {"hyperparameters.learning_rate": -1},  # refused when the study is created
                {"hyperparameters": {"learning_rate": 1e-2}},
                # Fails in the train stage: the tiny encoder has 2 layers to unfreeze, not 50.
                {"method": "freeze", "hyperparameters.freeze_top_layers": 50},
            ],
        },
        "metric": "f1_macro",
        "max_concurrency": 2,
    }
    created = stack.client.post("/v1/studies", json=body, headers=stack.headers(key))
    assert created.status_code == 201, created.text
    submitted = [variant for variant in created.json()["variants"] if variant["job_id"] is not None]
    assert len(submitted) == 2  # max_concurrency

    study = wait_for_study(stack, key, created.json()["id"])
    assert study["status"] == "succeeded", study
    base, low_rate, refused, high_rate, broken = study["variants"]
    assert refused["status"] == "failed" and refused["job_id"] is None
    assert "learning_rate" in refused["error"]["message"]
    assert broken["status"] == "failed" and broken["error"]["stage"] == "train", broken
    assert (
        broken["error"]["code"] == "unsupported_model" and broken["rank"] is None and broken["change"] is None
    )

    ranked = [base, low_rate, high_rate]
    assert all(variant["status"] == "succeeded" for variant in ranked), ranked
    values = [variant["metric_value"] for variant in ranked]
    assert [variant["rank"] for variant in ranked] == [
        1 + sum(other > value for other in values) for value in values
    ]
    assert [entry["position"] for entry in study["result"]["ranking"]] == [
        variant["position"]
        for variant in sorted(ranked, key=lambda variant: (variant["rank"], variant["position"]))
    ]
    for variant in (low_rate, high_rate):
        job = stack.client.get(f"/v1/jobs/{variant['job_id']}", headers=stack.headers(key)).json()
        assert variant["metric_value"] == job["result"]["evaluation"]["metrics"]["f1_macro"]
        change = variant["change"]
        assert change["rows"] == 30
        assert change["delta"] == pytest.approx(variant["metric_value"] - base["metric_value"])
        assert change["low"] <= change["delta"] <= change["high"]
        assert variant["change_summary"].startswith("learning_rate 0.005 → ")

    listed = stack.client.get("/v1/studies", headers=stack.headers(key)).json()["items"]
    assert (
        listed[0]["id"] == study["id"]
        and listed[0]["best"]["position"] == study["result"]["ranking"][0]["position"]
    )
