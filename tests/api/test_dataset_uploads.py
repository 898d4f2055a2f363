"""Malformed uploads answer 4xx naming the row and the reason, and leave no object or row behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.stack import Stack

GOOD = [{"text": f"row {i} is fine", "label": "a" if i % 2 else "b"} for i in range(10)]


def jsonl(rows: list[object]) -> bytes:
    return ("\n".join(json.dumps(row) for row in rows) + "\n").encode()


CASES: list[tuple[str, str, bytes, int, int | None, str]] = [
    (
        "bad-json",
        "d.jsonl",
        jsonl(GOOD[:4]) + b'{"text": "oops", "label": \n' + jsonl(GOOD[4:]),
        422,
        5,
        "json",
    ),
    (
        "missing-column",
        "d.jsonl",
        jsonl([{"body": "x", "label": "a"}, {"body": "y", "label": "b"}]),
        422,
        None,
        "text",
    ),
    (
        "empty-text",
        "d.jsonl",
        jsonl([*GOOD[:2], {"text": "   ", "label": "a"}, *GOOD[2:]]),
        422,
        3,
        "whitespace",
    ),
    ("null-label", "d.jsonl", jsonl([*GOOD[:6], {"text": "no label", "label": None}]), 422, 7, "null"),
    (
        "one-class",
        "d.jsonl",
        jsonl([{"text": f"t{i}", "label": "same"} for i in range(5)]),
        422,
        None,
        "class",
    ),
    (
        "wrong-encoding",
        "d.jsonl",
        jsonl(GOOD[:3]) + '{"text": "caf\u00e9", "label": "a"}\n'.encode("latin-1"),
        422,
        4,
        "utf-8",
    ),
    ("binary", "d.jsonl", bytes(range(256)) * 8, 422, None, "binary"),
    ("empty-file", "d.jsonl", b"", 422, None, "empty"),
    ("ragged-csv", "d.csv", b"text,label\nhello,a\nworld,b,extra\nagain,a\n", 422, 2, "field"),
    ("array-line", "d.jsonl", jsonl([*GOOD[:3], ["not", "an", "object"]]), 422, 4, "object"),
    ("unknown-extension", "d.xlsx", b"PK\x03\x04 whatever", 422, None, ""),
]


@pytest.mark.parametrize(
    ("name", "filename", "content", "status", "row", "reason_word"), CASES, ids=[c[0] for c in CASES]
)
def test_malformed_upload_is_refused_whole(
    api_stack: Stack,
    tmp_path: Path,
    name: str,
    filename: str,
    content: bytes,
    status: int,
    row: int | None,
    reason_word: str,
) -> None:
    _, key = api_stack.new_team()
    path = tmp_path / filename
    path.write_bytes(content)
    response = api_stack.upload(key, path, name=name)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    first = error["details"]["errors"][0]
    if row is not None:
        assert first["row"] == row, error
    assert reason_word.lower() in (first["reason"] + error["message"]).lower(), error
    _assert_nothing_stored(api_stack, key)


def test_oversize_upload_is_413_and_stores_nothing(api_stack: Stack, tmp_path: Path) -> None:
    _, key = api_stack.new_team()
    limit = api_stack.settings.max_upload_bytes
    api_stack.client.app.state.settings.max_upload_bytes = 1000
    try:
        path = tmp_path / "big.jsonl"
        path.write_bytes(jsonl([{"text": "x" * 50, "label": "a" if i % 2 else "b"} for i in range(100)]))
        response = api_stack.upload(key, path, name="big")
    finally:
        api_stack.client.app.state.settings.max_upload_bytes = limit
    assert response.status_code == 413, response.text
    assert response.json()["error"]["details"]["limit_bytes"] == 1000
    _assert_nothing_stored(api_stack, key)


def test_good_upload_has_a_report_and_can_be_deleted(api_stack: Stack, tmp_path: Path) -> None:
    _, key = api_stack.new_team()
    rows = [*GOOD, GOOD[0]]  # one exact duplicate
    path = tmp_path / "good.jsonl"
    path.write_bytes(jsonl(rows))
    created = api_stack.upload(key, path, name="good")
    assert created.status_code == 201, created.text
    dataset = created.json()
    assert dataset["row_count"] == 11 and dataset["labels"] == ["a", "b"]
    assert dataset["report"]["duplicates"]["exact"]["rows"] >= 1
    assert {entry["label"] for entry in dataset["report"]["labels"]["classes"]} == {"a", "b"}
    store = api_stack.client.app.state.store
    assert store.exists(f"datasets/sha256/{dataset['sha256']}")

    # A dataset used by a job cannot be deleted; the 409 names the job.
    job = api_stack.client.post(
        "/v1/jobs",
        json={"base_model": "tiny-bert", "train_dataset_id": dataset["id"]},
        headers=api_stack.headers(key),
    ).json()
    refused = api_stack.client.delete(f"/v1/datasets/{dataset['id']}", headers=api_stack.headers(key))
    assert refused.status_code == 409 and job["id"] in refused.json()["error"]["details"]["jobs"]

    other = api_stack.upload(key, path, name="unused copy").json()
    assert (
        api_stack.client.delete(f"/v1/datasets/{other['id']}", headers=api_stack.headers(key)).status_code
        == 204
    )
    # The content-addressed object stays while another dataset still refers to it.
    assert store.exists(f"datasets/sha256/{dataset['sha256']}")


def _assert_nothing_stored(stack: Stack, key: str) -> None:
    assert stack.client.get("/v1/datasets", headers=stack.headers(key)).json() == []
    store = stack.client.app.state.store
    assert list(store.list("datasets/")) == []
    uploads = stack.settings.work_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []
