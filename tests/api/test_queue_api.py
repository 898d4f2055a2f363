"""Quotas and the queue over REST: a job over its team's quota is accepted and waits, saying why and
where it stands; an admin raises the quota or resumes a paused queue and it starts at once."""

from __future__ import annotations

from pathlib import Path

from tests.support.stack import Stack
from tests.support.tickets import write_rows


def submit(stack: Stack, key: str, train_id: str) -> dict:
    response = stack.client.post(
        "/v1/jobs", json={"base_model": "tiny-bert", "train_dataset_id": train_id}, headers=stack.headers(key)
    )
    assert response.status_code == 201, response.text
    return response.json()


def job(stack: Stack, key: str, job_id: str) -> dict:
    response = stack.client.get(f"/v1/jobs/{job_id}", headers=stack.headers(key))
    assert response.status_code == 200, response.text
    return response.json()


def test_quota_holds_jobs_queued_and_raising_it_starts_them(api_stack: Stack, tmp_path: Path) -> None:
    team_id, key = api_stack.new_team()
    admin = api_stack.headers()
    set_to_one = api_stack.client.put(
        f"/v1/teams/{team_id}/quota", json={"max_concurrent_jobs": 1}, headers=admin
    )
    assert set_to_one.status_code == 200, set_to_one.text
    assert set_to_one.json()["max_concurrent_jobs"] == 1 and set_to_one.json()["gpu_hours_per_period"] is None

    train_id = api_stack.upload(key, write_rows(tmp_path / "train.jsonl", 30), name="train").json()["id"]
    jobs = [submit(api_stack, key, train_id) for _ in range(3)]  # accepted, never a 429
    assert all(created["status"] == "queued" for created in jobs)
    seen = [job(api_stack, key, created["id"]) for created in jobs]
    assert [bool(view["admitted_at"]) for view in seen] == [True, False, False]
    assert [(view["queue"]["position"], view["queue"]["reason"]) for view in seen[1:]] == [
        (1, "team_concurrency"),
        (2, "team_concurrency"),
    ]
    assert "limit is 1" in seen[1]["queue"]["message"]

    queue = api_stack.client.get("/v1/queue", headers=admin).json()
    [mine] = [team for team in queue["teams"] if team["team_id"] == team_id]
    assert (mine["running"], mine["waiting"], mine["blocked"]) == (1, 2, "team_concurrency")

    raised = api_stack.client.put(
        f"/v1/teams/{team_id}/quota", json={"max_concurrent_jobs": 3}, headers=admin
    )
    assert raised.status_code == 200, raised.text
    # The dispatch pass ran after the quota's commit, before the next request.
    assert all(job(api_stack, key, created["id"])["admitted_at"] for created in jobs)


def test_a_paused_queue_accepts_jobs_and_says_why_they_wait(api_stack: Stack, tmp_path: Path) -> None:
    _, key = api_stack.new_team()
    admin = api_stack.headers()
    paused = api_stack.client.post("/v1/queue/pause", json={"reason": "worker maintenance"}, headers=admin)
    assert paused.status_code == 200 and paused.json()["paused"] is True
    train_id = api_stack.upload(key, write_rows(tmp_path / "train.jsonl", 30), name="train").json()["id"]
    created = submit(api_stack, key, train_id)
    waiting = job(api_stack, key, created["id"])
    assert waiting["queue"]["reason"] == "paused" and "worker maintenance" in waiting["queue"]["message"]
    resumed = api_stack.client.post("/v1/queue/resume", headers=admin)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    # The resume answers before the pass that admits the waiting jobs; passes run one at a time, so
    # once a pass asked for now has run, the one the resume asked for has too.
    api_stack.client.app.state.dispatch_loop.request_and_wait()  # type: ignore[attr-defined]
    started = job(api_stack, key, created["id"])
    assert started["admitted_at"] and started["queue"]["reason"] == "starting"


def test_queue_and_quotas_are_for_admins_and_checked(api_stack: Stack) -> None:
    team_id, key = api_stack.new_team()
    team = api_stack.headers(key)
    for method, path, body in (
        ("GET", "/v1/queue", None),
        ("POST", "/v1/queue/pause", {}),
        ("POST", "/v1/queue/resume", None),
        ("GET", f"/v1/teams/{team_id}/quota", None),
        ("PUT", f"/v1/teams/{team_id}/quota", {"max_concurrent_jobs": 100}),
    ):
        assert api_stack.client.request(method, path, json=body, headers=team).status_code == 403, path
    admin = api_stack.headers()
    assert (
        api_stack.client.get(f"/v1/teams/{team_id}/quota", headers=admin).json()["max_concurrent_jobs"] == 4
    )
    missing = api_stack.client.get("/v1/teams/00000000-0000-0000-0000-000000000000/quota", headers=admin)
    assert missing.status_code == 404
    refused = api_stack.client.put(
        f"/v1/teams/{team_id}/quota", json={"max_concurrent_jobs": 0}, headers=admin
    )
    assert refused.status_code == 422 and "max_concurrent_jobs" in refused.text
    assert api_stack.client.get("/v1/queue", headers=admin).json()["paused"] is False
