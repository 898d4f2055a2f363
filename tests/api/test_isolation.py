"""Every read and write is scoped to the caller's team: another team's objects answer 404."""

from __future__ import annotations

from pathlib import Path

from tests.support.stack import Stack
from tests.support.tickets import write_rows


def test_team_b_sees_nothing_of_team_a(api_stack: Stack, tmp_path: Path) -> None:
    _, key_a = api_stack.new_team("team-a")
    _, key_b = api_stack.new_team("team-b")
    dataset = api_stack.upload(key_a, write_rows(tmp_path / "a.jsonl", 30), name="a-data").json()
    job = api_stack.client.post(
        "/v1/jobs",
        json={"base_model": "tiny-bert", "train_dataset_id": dataset["id"]},
        headers=api_stack.headers(key_a),
    ).json()
    b = api_stack.headers(key_b)
    dataset_id, job_id = dataset["id"], job["id"]

    reads = [
        f"/v1/datasets/{dataset_id}",
        f"/v1/jobs/{job_id}",
        f"/v1/jobs/{job_id}/events",
        f"/v1/jobs/{job_id}/events/stream",
        f"/v1/jobs/{job_id}/metrics",
        f"/v1/jobs/{job_id}/checkpoints",
        f"/v1/jobs/{job_id}/artifacts",
        f"/v1/jobs/{job_id}/files/model/config.json",
    ]
    for path in reads:
        response = api_stack.client.get(path, headers=b)
        assert response.status_code == 404, (path, response.status_code, response.text)
        assert response.json()["error"]["code"] == "not_found"

    assert api_stack.client.post(f"/v1/jobs/{job_id}/cancel", headers=b).status_code == 404
    assert api_stack.client.delete(f"/v1/datasets/{dataset_id}", headers=b).status_code == 404
    # Team B cannot train on team A's dataset either: the spec names a dataset it cannot see.
    submit = api_stack.client.post(
        "/v1/jobs", json={"base_model": "tiny-bert", "train_dataset_id": dataset_id}, headers=b
    )
    assert submit.status_code == 422 and submit.json()["error"]["details"]["field"] == "train_dataset_id"
    # Lists show only the caller's own objects.
    assert api_stack.client.get("/v1/datasets", headers=b).json() == []
    assert api_stack.client.get("/v1/jobs", headers=b).json()["items"] == []

    # Admin endpoints are refused to a team key, and nothing works without a key.
    for method, path in [("get", "/v1/teams"), ("post", "/v1/teams"), ("post", "/v1/base-models")]:
        response = getattr(api_stack.client, method)(
            path, headers=b, **({"json": {}} if method == "post" else {})
        )
        assert response.status_code == 403, (path, response.text)
    assert api_stack.client.get(f"/v1/jobs/{job_id}").status_code == 401
    assert (
        api_stack.client.get("/v1/jobs", headers={"Authorization": "Bearer tmp_nope_" + "x" * 20}).status_code
        == 401
    )

    # Team A still sees its own objects, unchanged.
    a = api_stack.headers(key_a)
    assert api_stack.client.get(f"/v1/jobs/{job_id}", headers=a).json()["status"] == "queued"
    assert api_stack.client.get(f"/v1/datasets/{dataset_id}", headers=a).status_code == 200
