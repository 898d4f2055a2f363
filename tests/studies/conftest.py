from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.e2e.test_job_lifecycle import write_rows
from tests.support.stack import Stack, running_stack


@pytest.fixture
def api_stack(embedded_settings: Settings, tiny_base_model: Path) -> Iterator[Stack]:
    """The API on the embedded default without a worker: the test plays the worker's part."""
    with running_stack(embedded_settings, with_worker=False) as stack:
        stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
        yield stack


def make_team(stack: Stack, folder: Path, max_concurrent_jobs: int | None = None) -> tuple[str, dict]:
    """A team key and a base spec over the team's own train and test datasets."""
    created = stack.client.post(
        "/v1/teams",
        json={"name": f"team-{uuid.uuid4().hex[:8]}", "max_concurrent_jobs": max_concurrent_jobs},
        headers=stack.headers(),
    )
    assert created.status_code == 201, created.text
    issued = stack.client.post(
        f"/v1/teams/{created.json()['id']}/keys", json={"name": "ci"}, headers=stack.headers()
    )
    key = issued.json()["key"]
    folder.mkdir(parents=True, exist_ok=True)
    train = stack.upload(key, write_rows(folder / "train.jsonl", 60), name="train")
    test = stack.upload(key, write_rows(folder / "test.jsonl", 30, offset=1000), name="test")
    assert train.status_code == 201 and test.status_code == 201, (train.text, test.text)
    base_spec = {
        "base_model": "tiny-bert",
        "train_dataset_id": train.json()["id"],
        "test_dataset_id": test.json()["id"],
        "hyperparameters": {"epochs": 1, "learning_rate": 1e-4},
        "evaluation": {"robustness": False, "bootstrap_resamples": 200},
    }
    return key, base_spec


@pytest.fixture
def team(api_stack: Stack, tmp_path: Path) -> tuple[str, dict]:
    return make_team(api_stack, tmp_path / "team")
