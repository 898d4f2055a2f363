"""Job submission rules over REST: a spec that cannot run is a 422 naming the field."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support.stack import Stack
from tests.support.tickets import write_rows


@pytest.fixture
def team_with_data(api_stack: Stack, tmp_path: Path) -> tuple[str, dict, dict]:
    _, key = api_stack.new_team()
    train = api_stack.upload(key, write_rows(tmp_path / "train.jsonl", 30), name="train").json()
    odd = tmp_path / "odd.jsonl"
    odd.write_text(
        "\n".join(
            json.dumps({"text": f"t {i}", "label": lab}) for i, lab in enumerate(["billing", "refunds"] * 3)
        )
    )
    other = api_stack.upload(key, odd, name="test-with-new-label").json()
    return key, train, other


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"base_model": "no-such-model"}, "base_model"),
        ({"hyperparameters": {"learning_rate": 0}}, "hyperparameters.learning_rate"),
        ({"hyperparameters": {"learning_rate": -1e-4}}, "hyperparameters.learning_rate"),
        ({"hyperparameters": {"epochs": 0}}, "hyperparameters.epochs"),
        ({"hyperparameters": {"batch_size": 0}}, "hyperparameters.batch_size"),
        ({"method": "qlora-on-cpu"}, "method"),
        ({"hyperparameters": {"lora": {"r": 0}}}, "hyperparameters.lora.r"),
        ({"validation_split": 0.9}, "validation_split"),
        ({"surprise": 1}, "surprise"),
        ({"train_dataset_id": "00000000-0000-0000-0000-000000000000"}, "train_dataset_id"),
    ],
)
def test_spec_that_cannot_run_names_the_field(
    api_stack: Stack, team_with_data: tuple[str, dict, dict], change: dict, field: str
) -> None:
    key, train, _ = team_with_data
    spec = {"base_model": "tiny-bert", "train_dataset_id": train["id"], **change}
    response = api_stack.client.post("/v1/jobs", json=spec, headers=api_stack.headers(key))
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    fields = [details["field"]] if "field" in details else [error["field"] for error in details["errors"]]
    assert field in fields, response.json()
    assert api_stack.client.get("/v1/jobs", headers=api_stack.headers(key)).json()["items"] == []


def test_test_labels_missing_from_train_are_refused(
    api_stack: Stack, team_with_data: tuple[str, dict, dict]
) -> None:
    key, train, other = team_with_data
    spec = {"base_model": "tiny-bert", "train_dataset_id": train["id"], "test_dataset_id": other["id"]}
    response = api_stack.client.post("/v1/jobs", json=spec, headers=api_stack.headers(key))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"]["field"] == "test_dataset_id" and "refunds" in error["message"]


def test_list_filters_and_paginates(api_stack: Stack, team_with_data: tuple[str, dict, dict]) -> None:
    key, train, _ = team_with_data
    headers = api_stack.headers(key)
    ids = [
        api_stack.client.post(
            "/v1/jobs", json={"base_model": "tiny-bert", "train_dataset_id": train["id"]}, headers=headers
        ).json()["id"]
        for _ in range(3)
    ]
    cancelled = api_stack.client.post(f"/v1/jobs/{ids[0]}/cancel", headers=headers)
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    # A finished job cannot be cancelled again: the transition is refused, not applied.
    again = api_stack.client.post(f"/v1/jobs/{ids[0]}/cancel", headers=headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "illegal_transition"

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api_stack.client.get("/v1/jobs", params=params, headers=headers).json()
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    queued = api_stack.client.get("/v1/jobs", params={"status": "queued"}, headers=headers).json()["items"]
    assert {job["id"] for job in queued} == set(ids[1:])
    events = api_stack.client.get(f"/v1/jobs/{ids[0]}/events?type=transition", headers=headers).json()[
        "items"
    ]
    assert {e["type"] for e in events} == {"transition"}
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        ("queued", "cancelling"),
        ("cancelling", "cancelled"),
    ]
    assert api_stack.client.get("/v1/jobs", params={"cursor": "garbage"}, headers=headers).status_code == 422


def test_health_ready_and_metrics(api_stack: Stack) -> None:
    assert api_stack.client.get("/healthz").json() == {"status": "ok"}
    ready = api_stack.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]) == {"database", "broker", "object_store"}
    metrics = api_stack.client.get("/metrics").text
    assert "temper_http_requests_total" in metrics
    assert api_stack.client.get("/docs").status_code == 200


def test_every_timestamp_carries_its_zone_in_create_get_and_list_responses(
    api_stack: Stack, team_with_data: tuple[str, dict, dict]
) -> None:
    """SQLite hands timestamps back without a zone; the API must still say they are UTC."""
    key, train, _ = team_with_data
    created = api_stack.client.post(
        "/v1/jobs",
        json={"base_model": "tiny-bert", "train_dataset_id": train["id"]},
        headers=api_stack.headers(key),
    ).json()
    fetched = api_stack.client.get(f"/v1/jobs/{created['id']}", headers=api_stack.headers(key)).json()
    listed = api_stack.client.get("/v1/jobs", headers=api_stack.headers(key)).json()["items"][0]
    events = api_stack.client.get(f"/v1/jobs/{created['id']}/events", headers=api_stack.headers(key)).json()
    datasets = api_stack.client.get("/v1/datasets", headers=api_stack.headers(key)).json()
    stamps = [
        *(body[name] for body in (created, fetched, listed) for name in ("created_at", "updated_at")),
        events["items"][0]["created_at"],
        datasets[0]["created_at"],
    ]
    for stamp in stamps:
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0), stamp
    assert listed["created_at"] == created["created_at"]


def test_lora_on_an_architecture_without_default_targets_is_refused_at_submit(
    api_stack: Stack, team_with_data: tuple[str, dict, dict], tmp_path: Path
) -> None:
    """Known before any GPU time: the catalog recorded the model's architecture at registration."""
    from transformers import MPNetConfig, MPNetModel

    MPNetModel(
        MPNetConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    ).save_pretrained(tmp_path / "mpnet")
    api_stack.register_base_model("tiny-mpnet", f"local:{tmp_path / 'mpnet'}")
    key, train, _ = team_with_data
    spec = {"base_model": "tiny-mpnet", "method": "lora", "train_dataset_id": train["id"]}
    refused = api_stack.client.post("/v1/jobs", json=spec, headers=api_stack.headers(key))
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"]["field"] == "hyperparameters.lora.target_modules"
    assert "mpnet" in refused.json()["error"]["message"]
    # Naming the targets makes the same spec acceptable.
    named = {**spec, "hyperparameters": {"lora": {"target_modules": ["q", "v"]}}}
    assert api_stack.client.post("/v1/jobs", json=named, headers=api_stack.headers(key)).status_code == 201
