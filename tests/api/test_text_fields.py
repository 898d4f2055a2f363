"""NUL and control characters in any text field are a 422 naming the field, on Postgres (where a NUL
byte used to reach the database and answer 500); line breaks are kept where text is multi-line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.text import check_text
from tests.support.stack import Stack
from tests.support.tickets import write_rows


def field_of(response) -> str:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and "control character" in error["message"]
    return error["details"].get("field") or error["details"]["errors"][0]["field"]


def test_control_characters_are_refused_field_by_field(postgres_stack: Stack, tmp_path: Path) -> None:
    stack = postgres_stack
    _, key = stack.new_team("research")
    headers = stack.headers(key)
    dataset = stack.upload(key, write_rows(tmp_path / "t.jsonl", 30), name="t").json()

    job = stack.client.post(
        "/v1/jobs", json={"base_model": "tiny\x00bert", "train_dataset_id": dataset["id"]}, headers=headers
    )
    assert field_of(job) == "base_model"
    nested = stack.client.post(
        "/v1/jobs",
        json={
            "base_model": "tiny-bert",
            "train_dataset_id": dataset["id"],
            "evaluation": {"gate": {"metric": "f1\x1b[2J"}},
        },
        headers=headers,
    )
    assert field_of(nested) == "evaluation.gate.metric"
    named = stack.client.post(
        "/v1/jobs",
        json={"name": "a\x07b", "base_model": "tiny-bert", "train_dataset_id": dataset["id"]},
        headers=headers,
    )
    assert field_of(named) == "name"
    base_model = stack.client.post(
        "/v1/base-models",
        json={"name": "evil\x00", "task_family": "text-classification", "source": "local:/x"},
        headers=stack.headers(),
    )
    assert field_of(base_model) == "name"
    upload = stack.client.post(
        "/v1/datasets",
        files={"file": ("x.jsonl", b'{"text": "a", "label": "b"}\n')},
        data={"name": "bad\x00name"},
        headers=headers,
    )
    assert field_of(upload) == "name"
    webhook = stack.client.post("/v1/webhooks", json={"url": "http://h.test/\x00"}, headers=headers)
    assert field_of(webhook) == "url"

    # Path and query parameters: the file path used to reach the store and raise InvalidKey (500).
    for path in ("a%00b", "model/%01config.json", "%7F"):
        answer = stack.client.get(
            f"/v1/jobs/00000000-0000-0000-0000-000000000000/files/{path}", headers=headers
        )
        assert field_of(answer) == "path"
    assert field_of(stack.client.get("/v1/models/x%00y", headers=headers)) == "name"
    assert field_of(stack.client.get("/v1/datasets", params={"task": "a\x00"}, headers=headers)) == "task"

    # Nothing was stored by any of them.
    assert stack.client.get("/v1/jobs", headers=headers).json()["items"] == []


def test_line_breaks_are_kept_where_text_is_multi_line(postgres_stack: Stack) -> None:
    stack = postgres_stack
    created = stack.client.post(
        "/v1/base-models",
        json={
            "name": "described",
            "task_family": "text-classification",
            "source": "local:/nowhere",
            "description": "line one\nline two\tindented",
        },
        headers=stack.headers(),
    )
    # Refused or accepted for its source, but never for the description's line break.
    assert "control character" not in created.text
    one_line = stack.client.post(
        "/v1/base-models",
        json={"name": "a\nb", "task_family": "text-classification", "source": "local:/nowhere"},
        headers=stack.headers(),
    )
    assert field_of(one_line) == "name"


@pytest.mark.parametrize("text", ["\x00", "a\x1fb", "\x7f", "\x85", "\ud800"])
def test_check_text_refuses_control_characters_and_lone_surrogates(text: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        check_text(text)


def test_check_text_allows_ordinary_unicode_and_multiline_where_asked() -> None:
    assert check_text("Grüße, 東京 🚀") == "Grüße, 東京 🚀"
    assert check_text("a\nb\tc\r\n", frozenset("\n\r\t")) == "a\nb\tc\r\n"
    with pytest.raises(ValueError, match="line breaks and tabs are allowed"):
        check_text("a\x00", frozenset("\n\r\t"))


def test_a_nul_in_a_datasets_rows_is_a_bad_row_not_a_500(postgres_stack: Stack, tmp_path: Path) -> None:
    _, key = postgres_stack.new_team("research")
    path = tmp_path / "nul.jsonl"
    rows = [
        {"text": f"parcel {i} late", "label": "ship\u0000ping" if i == 3 else "billing"} for i in range(30)
    ]
    rows[5]["text"] = "a NUL \u0000 in the text"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    answer = postgres_stack.upload(key, path, name="nul")
    assert answer.status_code == 422, answer.text
    reasons = {error["row"]: error["reason"] for error in answer.json()["error"]["details"]["errors"]}
    assert "control character U+0000" in reasons[4] and "NUL" in reasons[6]
