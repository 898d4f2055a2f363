"""A small support-ticket classification set written on the fly, and the job spec the e2e tests use.

Three classes whose texts share a template and differ by a few class words, so a tiny BERT learns
them in a couple of epochs on a CPU.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from tests.support.stack import Stack

LABELS = ("billing", "shipping", "login")
WORDS = {
    "billing": ["invoice", "charge", "refund", "payment", "card"],
    "shipping": ["parcel", "delivery", "courier", "tracking", "package"],
    "login": ["password", "account", "locked", "signin", "reset"],
}


def write_rows(path: Path, count: int, offset: int = 0) -> Path:
    lines = []
    for index in range(offset, offset + count):
        label = LABELS[index % len(LABELS)]
        words = WORDS[label]
        text = f"my {words[index % 5]} issue number {index} about the {words[(index + 2) % 5]}"
        lines.append(json.dumps({"text": text, "label": label}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def upload_tickets(
    stack: Stack, key: str, folder: Path, train_rows: int = 90, test_rows: int = 30
) -> tuple[str, str]:
    """Upload a train and a test set for the team of `key`; return their ids."""
    train = stack.upload(key, write_rows(folder / "train.jsonl", train_rows), name="tickets-train")
    test = stack.upload(key, write_rows(folder / "test.jsonl", test_rows, offset=1000), name="tickets-test")
    assert train.status_code == 201 and test.status_code == 201, (train.text, test.text)
    return train.json()["id"], test.json()["id"]


def tickets_spec(train_id: str, test_id: str, epochs: float = 2, **extra: Any) -> dict[str, Any]:
    """A full fine-tune of the tiny BERT (registered as `tiny-bert`) on the ticket sets."""
    return {
        "base_model": "tiny-bert",
        "method": "full",
        "train_dataset_id": train_id,
        "test_dataset_id": test_id,
        "hyperparameters": {"epochs": epochs, "batch_size": 8, "learning_rate": 5e-3, "max_seq_length": 32},
        **extra,
    }


def make_team(
    stack: Stack, folder: Path, max_concurrent_jobs: int | None = None
) -> tuple[str, dict[str, Any]]:
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
    key: str = issued.json()["key"]
    train_id, test_id = upload_tickets(stack, key, folder, train_rows=60)
    base_spec = {
        "base_model": "tiny-bert",
        "train_dataset_id": train_id,
        "test_dataset_id": test_id,
        "hyperparameters": {"epochs": 1, "learning_rate": 1e-4},
        "evaluation": {"robustness": False, "bootstrap_resamples": 200},
    }
    return key, base_spec
