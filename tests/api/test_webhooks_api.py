"""Webhook endpoints over the real API (embedded default, no worker): the secret is shown once, an
endpoint is its team's alone, URLs and event types are checked, and a job or study reaching a state
becomes one pending delivery per active endpoint that subscribes to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.stack import Stack
from tests.support.tickets import tickets_spec, upload_tickets


def create(stack: Stack, key: str, **body: Any) -> Any:
    return stack.client.post("/v1/webhooks", json=body, headers=stack.headers(key))


def deliveries(stack: Stack, key: str, endpoint_id: str) -> list[dict[str, Any]]:
    page = stack.client.get(f"/v1/webhooks/{endpoint_id}/deliveries", headers=stack.headers(key))
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


def test_an_endpoint_shows_its_secret_once_and_belongs_to_its_team(api_stack: Stack) -> None:
    _, key = api_stack.new_team()
    _, other_key = api_stack.new_team()
    created = create(api_stack, key, url="https://hooks.example.com/temper", events=["job.failed"])
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["active"] is True
    assert endpoint["events"] == ["job.failed"]

    shown = api_stack.client.get(f"/v1/webhooks/{endpoint['id']}", headers=api_stack.headers(key)).json()
    listed = api_stack.client.get("/v1/webhooks", headers=api_stack.headers(key)).json()
    assert "secret" not in shown and [item["id"] for item in listed] == [endpoint["id"]]
    assert all("secret" not in item for item in listed)
    assert endpoint["secret"] not in str(shown) + str(listed)

    other = api_stack.headers(other_key)
    assert api_stack.client.get(f"/v1/webhooks/{endpoint['id']}", headers=other).status_code == 404
    assert api_stack.client.get("/v1/webhooks", headers=other).json() == []
    assert api_stack.client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=other).status_code == 404

    paused = api_stack.client.patch(
        f"/v1/webhooks/{endpoint['id']}", json={"active": False}, headers=api_stack.headers(key)
    )
    assert paused.status_code == 200 and paused.json()["active"] is False
    assert paused.json()["events"] == ["job.failed"]
    deleted = api_stack.client.delete(f"/v1/webhooks/{endpoint['id']}", headers=api_stack.headers(key))
    assert deleted.status_code == 204
    assert (
        api_stack.client.get(f"/v1/webhooks/{endpoint['id']}", headers=api_stack.headers(key)).status_code
        == 404
    )


def test_urls_and_event_types_are_checked(api_stack: Stack) -> None:
    _, key = api_stack.new_team()
    for body, field in [
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "hooks.example.com/x"}, "url"),
        ({"url": "https://hooks.example.com", "events": ["job.exploded"]}, "events"),
        ({"url": "https://hooks.example.com", "events": []}, "events"),
    ]:
        refused = create(api_stack, key, **body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["error"]["details"] == {"field": field}, refused.text
    every = create(api_stack, key, url="http://127.0.0.1:9/hooks").json()
    assert every["events"] == [
        "job.succeeded",
        "job.failed",
        "job.cancelled",
        "job.gate_failed",
        "study.succeeded",
        "study.failed",
        "study.cancelled",
    ]


def test_job_and_study_events_reach_the_active_endpoints_that_subscribe(
    api_stack: Stack, tmp_path: Path
) -> None:
    _, key = api_stack.new_team()
    headers = api_stack.headers(key)
    cancellations = create(
        api_stack, key, url="https://a.example.com", events=["job.cancelled", "study.cancelled"]
    )
    successes = create(api_stack, key, url="https://b.example.com", events=["job.succeeded"])
    paused = create(api_stack, key, url="https://c.example.com")
    cancellations_id, successes_id, paused_id = (r.json()["id"] for r in (cancellations, successes, paused))
    api_stack.client.patch(f"/v1/webhooks/{paused_id}", json={"active": False}, headers=headers)
    train_id, test_id = upload_tickets(api_stack, key, tmp_path)

    job = api_stack.client.post("/v1/jobs", json=tickets_spec(train_id, test_id), headers=headers).json()
    assert api_stack.client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).status_code == 202

    [delivery] = deliveries(api_stack, key, cancellations_id)
    assert (delivery["event_type"], delivery["attempt"], delivery["status"]) == (
        "job.cancelled",
        1,
        "pending",
    )
    payload = delivery["payload"]
    assert payload["type"] == "job.cancelled" and payload["id"] == delivery["event_id"]
    assert payload["data"]["job"]["id"] == job["id"] and payload["data"]["job"]["status"] == "cancelled"
    assert deliveries(api_stack, key, successes_id) == [] and deliveries(api_stack, key, paused_id) == []

    study = api_stack.client.post(
        "/v1/studies",
        json={
            "base_spec": tickets_spec(train_id, test_id),
            "variants": {"mode": "list", "overrides": [{"hyperparameters.epochs": 1}]},
            "metric": "f1_macro",
        },
        headers=headers,
    ).json()
    assert api_stack.client.post(f"/v1/studies/{study['id']}/cancel", headers=headers).status_code == 202
    events = [item["event_type"] for item in deliveries(api_stack, key, cancellations_id)]
    assert events.count("study.cancelled") == 1 and events.count("job.cancelled") >= 2
    [study_event] = [
        item
        for item in deliveries(api_stack, key, cancellations_id)
        if item["event_type"] == "study.cancelled"
    ]
    assert study_event["payload"]["data"]["study"]["id"] == study["id"]

    tested = api_stack.client.post(f"/v1/webhooks/{successes_id}/test", headers=headers)
    assert tested.status_code == 202 and tested.json()["event_type"] == "webhook.test"
    assert [item["id"] for item in deliveries(api_stack, key, successes_id)] == [tested.json()["id"]]

    first = api_stack.client.get(
        f"/v1/webhooks/{cancellations_id}/deliveries", params={"limit": 1}, headers=headers
    ).json()
    rest = api_stack.client.get(
        f"/v1/webhooks/{cancellations_id}/deliveries",
        params={"limit": 100, "cursor": first["next_cursor"]},
        headers=headers,
    ).json()
    assert len(first["items"]) == 1 and len(first["items"]) + len(rest["items"]) == len(events)
    assert rest["next_cursor"] is None
