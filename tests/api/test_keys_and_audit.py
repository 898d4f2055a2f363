"""Key scopes, revoke and rotation over REST, and the audit log that records them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.api.routes import jobs as jobs_routes
from shared.db.models import AuditEvent, Job
from tests.support.stack import Stack
from tests.support.tickets import write_rows


def test_scopes_are_issued_shown_and_enforced(api_stack: Stack) -> None:
    team_id, _ = api_stack.new_team("research")
    created = api_stack.client.post(
        f"/v1/teams/{team_id}/keys", json={"name": "dash", "scopes": ["read"]}, headers=api_stack.headers()
    )
    assert created.status_code == 201
    assert created.json()["scopes"] == ["read"] and created.json()["is_admin"] is False
    read_key = created.json()["key"]
    # admin implies write implies read; naming a lower scope with a higher one changes nothing.
    admin = api_stack.client.post(
        f"/v1/teams/{team_id}/keys",
        json={"name": "ops", "scopes": ["read", "admin"]},
        headers=api_stack.headers(),
    ).json()
    assert admin["scopes"] == ["read", "write", "admin"] and admin["is_admin"] is True
    default = api_stack.client.post(
        f"/v1/teams/{team_id}/keys", json={"name": "ci"}, headers=api_stack.headers()
    ).json()
    assert default["scopes"] == ["read", "write"]
    unknown = api_stack.client.post(
        f"/v1/teams/{team_id}/keys", json={"name": "x", "scopes": ["root"]}, headers=api_stack.headers()
    )
    assert (
        unknown.status_code == 422 and unknown.json()["error"]["details"]["errors"][0]["field"] == "scopes.0"
    )

    assert api_stack.client.get("/v1/jobs", headers=api_stack.headers(read_key)).status_code == 200
    refused = api_stack.client.post(
        "/v1/webhooks", json={"url": "http://x.test/h"}, headers=api_stack.headers(read_key)
    )
    assert refused.status_code == 403
    assert (
        refused.json()["error"]["message"]
        == "this needs an API key with the 'write' scope; this key has 'read'"
    )
    # A write key is no admin: the audit log and the admin routes need the admin scope.
    for path in ("/v1/audit", "/v1/teams"):
        answer = api_stack.client.get(path, headers=api_stack.headers(default["key"]))
        assert answer.status_code == 403 and answer.json()["error"]["details"]["required_scope"] == "admin"
    assert api_stack.client.get("/v1/audit", headers=api_stack.headers(admin["key"])).status_code == 200


def test_revoke_and_rotate(api_stack: Stack) -> None:
    team_id, _ = api_stack.new_team("research")
    key_id, key = api_stack.new_key(team_id, ["read", "write"], name="ci")

    rotated = api_stack.client.post(f"/v1/keys/{key_id}/rotate", json={}, headers=api_stack.headers())
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["name"] == "ci" and new["scopes"] == ["read", "write"] and new["team_id"] == team_id
    assert new["key"] != key and new["previous"]["id"] == key_id and new["previous"]["revoked_at"]
    assert api_stack.client.get("/v1/jobs", headers=api_stack.headers(key)).status_code == 401
    assert api_stack.client.get("/v1/jobs", headers=api_stack.headers(new["key"])).status_code == 200
    # A revoked key cannot be rotated back to life.
    again = api_stack.client.post(f"/v1/keys/{key_id}/rotate", json={}, headers=api_stack.headers())
    assert again.status_code == 409

    # With a grace period the old key works until it ends; revoking it ends it at once.
    graced = api_stack.client.post(
        f"/v1/keys/{new['id']}/rotate", json={"grace_seconds": 3600}, headers=api_stack.headers()
    ).json()
    assert api_stack.client.get("/v1/jobs", headers=api_stack.headers(new["key"])).status_code == 200
    assert api_stack.client.get("/v1/jobs", headers=api_stack.headers(graced["key"])).status_code == 200
    revoked = api_stack.client.post(f"/v1/keys/{new['id']}/revoke", headers=api_stack.headers())
    assert revoked.status_code == 200
    answer = api_stack.client.get("/v1/jobs", headers=api_stack.headers(new["key"]))
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "not_authenticated"


def test_changes_are_audited_with_who_what_and_the_request_id(api_stack: Stack, tmp_path: Path) -> None:
    team_id, key = api_stack.new_team("research")
    headers = {**api_stack.headers(key), "x-request-id": "req-upload-1"}
    dataset = api_stack.upload(key, write_rows(tmp_path / "t.jsonl", 30), name="t").json()
    upload_request = api_stack.client.post(
        "/v1/datasets",
        files={"file": ("u.jsonl", write_rows(tmp_path / "u.jsonl", 20).read_bytes())},
        data={"name": "u"},
        headers=headers,
    ).json()
    job = api_stack.client.post(
        "/v1/jobs",
        json={"base_model": "tiny-bert", "train_dataset_id": dataset["id"]},
        headers=api_stack.headers(key),
    ).json()
    api_stack.client.post(f"/v1/jobs/{job['id']}/cancel", headers=api_stack.headers(key))
    endpoint = api_stack.client.post(
        "/v1/webhooks", json={"url": "http://u:hunter22@127.0.0.1:9/h"}, headers=api_stack.headers(key)
    ).json()
    api_stack.client.delete(f"/v1/webhooks/{endpoint['id']}", headers=api_stack.headers(key))
    api_stack.client.delete(f"/v1/datasets/{upload_request['id']}", headers=api_stack.headers(key))
    # A request id that could not be stored (or would garble a log line) is replaced by a fresh one.
    strange = api_stack.client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/other"},
        headers={**api_stack.headers(key), "x-request-id": "x" * 300},
    )
    assert strange.status_code == 201 and len(strange.headers["x-request-id"]) == 32
    api_stack.client.delete(f"/v1/webhooks/{strange.json()['id']}", headers=api_stack.headers(key))
    # Reads and refusals are not changes.
    api_stack.client.get("/v1/jobs", headers=api_stack.headers(key))
    api_stack.client.get("/v1/teams", headers=api_stack.headers(key))

    page = api_stack.client.get("/v1/audit", params={"team_id": team_id}, headers=api_stack.headers()).json()
    actions = [event["action"] for event in page["items"]]
    assert actions == [
        "webhook.delete",
        "webhook.create",
        "dataset.delete",
        "webhook.delete",
        "webhook.create",
        "job.cancel",
        "job.submit",
        "dataset.upload",
        "dataset.upload",
    ]
    by_action = {event["action"]: event for event in page["items"]}
    submit = by_action["job.submit"]
    assert submit["target_type"] == "job" and submit["target_id"] == job["id"]
    assert submit["key_prefix"] == key.split("_")[1] and submit["team_id"] == team_id
    assert submit["details"]["base_model"] == "tiny-bert"
    assert page["items"][-2]["request_id"] == "req-upload-1"
    # The webhook URL's password is not kept; nor is its signing secret.
    assert "hunter22" not in str(page) and endpoint["secret"] not in str(page)

    # The admin's own changes, by family, and pagination.
    admin_keys = api_stack.client.get(
        "/v1/audit", params={"action": "admin", "limit": 2}, headers=api_stack.headers()
    ).json()
    assert [event["action"] for event in admin_keys["items"]] == ["admin.key.create", "admin.team.create"]
    rest = api_stack.client.get(
        "/v1/audit",
        params={"action": "admin", "cursor": admin_keys["next_cursor"]},
        headers=api_stack.headers(),
    ).json()
    assert [event["action"] for event in rest["items"]] == ["admin.base_model.register"]
    assert rest["next_cursor"] is None
    future = api_stack.client.get(
        "/v1/audit", params={"since": "2999-01-01T00:00:00"}, headers=api_stack.headers()
    ).json()
    assert future["items"] == []


def test_a_change_that_rolls_back_leaves_no_audit_row(
    api_stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = api_stack.new_team("research")
    dataset = api_stack.upload(key, write_rows(tmp_path / "t.jsonl", 30), name="t").json()

    def fail_after_the_audit_row(job: Job) -> None:
        raise RuntimeError("the answer could not be built")

    # The job row and its audit row are flushed; the route then fails, and the session rolls back.
    monkeypatch.setattr(jobs_routes, "present_job", fail_after_the_audit_row)
    with pytest.raises(RuntimeError):
        api_stack.client.post(
            "/v1/jobs",
            json={"base_model": "tiny-bert", "train_dataset_id": dataset["id"]},
            headers=api_stack.headers(key),
        )
    engine = api_stack.client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(Job)) == 0
        actions = list(connection.scalars(sa.select(AuditEvent.action)))
    assert "job.submit" not in actions and "dataset.upload" in actions


def test_the_rotation_grace_period_ends(api_stack: Stack) -> None:
    team_id, _ = api_stack.new_team("research")
    key_id, key = api_stack.new_key(team_id, ["read"])
    api_stack.client.post(f"/v1/keys/{key_id}/rotate", json={"grace_seconds": 1}, headers=api_stack.headers())
    assert api_stack.client.get("/v1/jobs", headers=api_stack.headers(key)).status_code == 200
    time.sleep(1.2)
    assert api_stack.client.get("/v1/jobs", headers=api_stack.headers(key)).status_code == 401
