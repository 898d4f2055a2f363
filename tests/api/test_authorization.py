"""Every operation, driven from the app's own OpenAPI document (a new route is covered without
touching this file): another team's key gets 404 (or 403 for the admin routes) and a read-only key
gets 403 for every change, and in both cases the database is exactly as it was."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import Stack
from tests.support.tickets import write_rows

READ_ONLY_POSTS = {"models_predict", "models_generate"}


def operations(stack: Stack) -> list[tuple[str, str, dict[str, Any]]]:
    document = stack.client.get("/openapi.json").json()
    found = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if path.startswith("/v1/"):
                found.append((method, path, operation))
    assert len(found) > 40  # the document is the app's, not an empty one
    return found


def scope_of(operation: dict[str, Any]) -> str:
    return operation["security"][0]["bearerAuth"][0]


def example_body(stack: Stack, operation: dict[str, Any]) -> dict[str, Any] | None:
    """The first example of the operation's JSON body (the document checks they fit), or None."""
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    schemas = stack.client.get("/openapi.json").json()["components"]["schemas"]
    name = content["application/json"]["schema"]["$ref"].split("/")[-1]
    examples = schemas[name].get("examples") or [{}]
    return examples[0]


def fill(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no test value for a parameter of {path}: add one to the objects below"
    return path


@pytest.fixture
def two_teams(postgres_stack: Stack, tmp_path: Path) -> dict[str, Any]:
    """Team A with a dataset, a queued job, a webhook endpoint and a read-only key; team B's key."""
    stack = postgres_stack
    team_a, key_a = stack.new_team("team-a")
    _, key_b = stack.new_team("team-b")
    read_key_id, read_key = stack.new_key(team_a, ["read"], name="dashboard")
    dataset = stack.upload(key_a, write_rows(tmp_path / "a.jsonl", 30), name="a-data").json()
    job = stack.client.post(
        "/v1/jobs",
        json={"base_model": "tiny-bert", "train_dataset_id": dataset["id"]},
        headers=stack.headers(key_a),
    ).json()
    endpoint = stack.client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=stack.headers(key_a)
    ).json()
    objects = {
        "team_id": team_a,
        "key_id": read_key_id,
        "dataset_id": dataset["id"],
        "job_id": job["id"],
        "endpoint_id": endpoint["id"],
        # No study or model exists for team B to reach; an id or name of A's kind answers the same.
        "study_id": str(uuid.uuid4()),
        "name": "tickets",
        "version": "1",
        "path": "model/config.json",
    }
    return {"objects": objects, "key_b": key_b, "read_key": read_key, "key_a": key_a}


def request(stack: Stack, method: str, path: str, key: str, operation: dict[str, Any]) -> Any:
    body = example_body(stack, operation)
    kwargs: dict[str, Any] = {"json": body} if body is not None else {}
    if "multipart/form-data" in operation.get("requestBody", {}).get("content", {}):
        kwargs = {"files": {"file": ("x.jsonl", b'{"text": "a", "label": "b"}\n')}, "data": {"name": "x"}}
    return stack.client.request(method.upper(), path, headers=stack.headers(key), **kwargs)


def test_another_teams_key_reaches_nothing_and_changes_nothing(
    postgres_stack: Stack, two_teams: dict[str, Any]
) -> None:
    stack, objects, key_b = postgres_stack, two_teams["objects"], two_teams["key_b"]
    before = stack.database_state()
    checked = 0
    for method, template, operation in operations(stack):
        needs_object = "{" in template
        if scope_of(operation) != "admin" and not needs_object:
            continue  # a list or a create: it acts on team B's own objects (tests/api/test_isolation.py)
        response = request(stack, method, fill(template, objects), key_b, operation)
        expected = 403 if scope_of(operation) == "admin" else 404
        assert response.status_code == expected, (method, template, response.status_code, response.text)
        checked += 1
    assert checked > 25
    assert stack.database_state() == before


def test_a_read_only_key_reads_and_changes_nothing(postgres_stack: Stack, two_teams: dict[str, Any]) -> None:
    stack, objects, read_key = postgres_stack, two_teams["objects"], two_teams["read_key"]
    # A key's first use is recorded (api_keys.last_used_at, then at most once a minute): used once
    # before the snapshot, the walk below is read against a state that nothing should change.
    assert stack.client.get("/v1/jobs", headers=stack.headers(read_key)).status_code == 200
    before = stack.database_state()
    refused = 0
    for method, template, operation in operations(stack):
        if scope_of(operation) == "read" and "text/event-stream" in operation["responses"]["200"]["content"]:
            continue  # the queued job's event stream would stay open: nothing to refuse there anyway
        response = request(stack, method, fill(template, objects), read_key, operation)
        if scope_of(operation) == "read":
            assert response.status_code != 403, (method, template, response.text)
            continue
        assert response.status_code == 403, (method, template, response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"] == "forbidden" and error["details"]["required_scope"] == scope_of(operation)
        assert f"'{scope_of(operation)}' scope" in error["message"]
        refused += 1
    assert refused > 15
    assert stack.database_state() == before
    # The key reads its team's objects.
    job = stack.client.get(f"/v1/jobs/{objects['job_id']}", headers=stack.headers(read_key))
    assert job.status_code == 200 and job.json()["status"] == "queued"


def test_every_route_declares_the_scope_its_method_implies(postgres_stack: Stack) -> None:
    for method, path, operation in operations(postgres_stack):
        scope = scope_of(operation)
        if "admin" in operation.get("tags", []) and operation["operationId"] != "base_models_list":
            assert scope == "admin", (method, path)
        elif method == "get" or operation["operationId"] in READ_ONLY_POSTS:
            assert scope == "read", (method, path)
        else:
            assert scope == "write", (method, path)
