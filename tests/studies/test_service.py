"""Studies over REST on the embedded stack, with the test finishing jobs in the worker's place.

Covers submission up to max_concurrency, the team quota (jobs wait queued), advancing (idempotent), closing with a
ranking, changes against the base read from stored predictions, cancel, isolation and refusals.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from shared.db.models import Job
from shared.jobs.dispatch import DispatchPolicy, dispatch_in
from shared.jobs.layout import JobLayout
from shared.settings import Settings
from shared.studies.service import advance_study
from tests.support.stack import Stack, running_stack
from tests.support.tickets import make_team

LIST_VARIANTS = {
    "mode": "list",
    "overrides": [
        {"hyperparameters.learning_rate": 3e-4},
        {"hyperparameters.learning_rate": -1},  # invalid: recorded, never submitted
        {"hyperparameters": {"learning_rate": 1e-3}},
    ],
}


def create(stack: Stack, key: str, base_spec: dict, variants: dict, **extra: object) -> dict:
    response = stack.client.post(
        "/v1/studies",
        json={"name": "lr", "base_spec": base_spec, "variants": variants, **extra},
        headers=stack.headers(key),
    )
    assert response.status_code == 201, response.text
    return response.json()


def get(stack: Stack, key: str, study_id: str) -> dict:
    response = stack.client.get(f"/v1/studies/{study_id}", headers=stack.headers(key))
    assert response.status_code == 200, response.text
    return response.json()


def finish(stack: Stack, job_id: str, correct_rows: int, status: str = "succeeded") -> None:
    """What the worker leaves behind: a terminal job with its evaluation summary and predictions."""
    app = stack.client.app
    true = ["billing", "login", "shipping"] * 10
    rows = [
        {
            "row_id": index,
            "true_label": label,
            "predicted_label": label if index < correct_rows else true[index - 1],
        }
        for index, label in enumerate(true)
    ]
    accuracy = sum(row["true_label"] == row["predicted_label"] for row in rows) / len(rows)
    app.state.store.put_bytes(
        JobLayout(uuid.UUID(job_id)).evaluation_file("predictions.jsonl"),
        "\n".join(json.dumps(row) for row in rows).encode(),
    )
    with app.state.session_factory.begin() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        job.status = status
        if status == "succeeded":
            job.result = {"evaluation": {"rows": len(rows), "metrics": {"accuracy": accuracy}}}
        else:
            job.error_code, job.error_message, job.error_stage = "stage_failed", "out of memory", "train"


def advance(stack: Stack, study_id: str) -> None:
    app = stack.client.app
    advance_study(app.state.session_factory, uuid.UUID(study_id))


def test_a_list_study_runs_in_slots_and_closes_with_a_ranking(
    api_stack: Stack, team: tuple[str, dict]
) -> None:
    run_list_study(api_stack, *team)


@pytest.mark.services
def test_a_list_study_on_postgres(services_settings: Settings, tiny_base_model: Path, tmp_path: Path) -> None:
    """The same study where the study row is really locked (SELECT ... FOR UPDATE)."""
    with running_stack(services_settings, with_worker=False) as stack:
        stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
        run_list_study(stack, *make_team(stack, tmp_path))


def run_list_study(api_stack: Stack, key: str, base_spec: dict) -> None:
    study = create(api_stack, key, base_spec, LIST_VARIANTS, metric="accuracy", max_concurrency=2)
    assert study["status"] == "running" and study["trial_budget"] == 3
    variants = study["variants"]
    assert [variant["position"] for variant in variants] == [0, 1, 2, 3]
    assert variants[0]["overrides"] == {}
    assert [variant["status"] for variant in variants] == ["queued", "queued", "failed", "pending"]
    assert variants[2]["job_id"] is None and "learning_rate" in variants[2]["error"]["message"]
    job = api_stack.client.get(f"/v1/jobs/{variants[1]['job_id']}", headers=api_stack.headers(key)).json()
    assert job["spec"]["hyperparameters"]["learning_rate"] == 3e-4
    assert job["spec"]["hyperparameters"]["epochs"] == 1  # the rest of the base spec is kept
    with api_stack.client.app.state.session_factory() as session:
        row = session.get(Job, uuid.UUID(job["id"]))
        assert row is not None and str(row.study_id) == study["id"]

    finish(api_stack, variants[0]["job_id"], correct_rows=15)
    advance(api_stack, study["id"])
    advance(api_stack, study["id"])  # a second advance for the same finished job submits nothing more
    variants = get(api_stack, key, study["id"])["variants"]
    assert variants[3]["status"] == "queued"
    team_jobs = api_stack.client.get("/v1/jobs", headers=api_stack.headers(key)).json()["items"]
    assert len(team_jobs) == 3

    finish(api_stack, variants[1]["job_id"], correct_rows=27)
    finish(api_stack, variants[3]["job_id"], correct_rows=0, status="failed")
    advance(api_stack, study["id"])
    done = get(api_stack, key, study["id"])
    assert done["status"] == "succeeded"
    base, better, broken, failed = done["variants"]
    assert (base["rank"], better["rank"]) == (2, 1)
    assert better["metric_value"] == 0.9 and base["metric_value"] == 0.5
    assert broken["status"] == "failed" and broken["change"] is None
    assert (
        failed["status"] == "failed" and failed["rank"] is None and failed["error"]["code"] == "stage_failed"
    )
    assert done["result"]["ranking"][0] == {
        "position": 1,
        "job_id": better["job_id"],
        "value": 0.9,
        "rank": 1,
    }
    change = better["change"]
    assert (
        change["rows"] == 30
        and change["delta"] == 0.4
        and 0 < change["low"] <= change["delta"] <= change["high"]
    )
    assert better["change_summary"].startswith("learning_rate 0.0001 → 0.0003: accuracy +0.400 [+")
    assert base["change"] is None and failed["change"] is None


def test_the_team_quota_holds_variants_in_the_queue(api_stack: Stack, tmp_path: Path) -> None:
    """A study submits up to its max_concurrency; the team's quota is the dispatcher's: the jobs over
    it wait queued, saying why, and start one by one as the team's running job ends."""
    key, base_spec = make_team(api_stack, tmp_path, max_concurrent_jobs=1)
    study = create(api_stack, key, base_spec, LIST_VARIANTS, metric="accuracy", max_concurrency=3)
    variants = study["variants"]
    assert [variant["status"] for variant in variants] == ["queued", "queued", "failed", "queued"]
    jobs = [job_of(api_stack, key, variant["job_id"]) for variant in variants if variant["job_id"]]
    assert [job["admitted_at"] is not None for job in jobs] == [True, False, False]
    assert jobs[0]["queue"]["reason"] == "starting"
    assert [job["queue"]["reason"] for job in jobs[1:]] == ["team_concurrency", "team_concurrency"]
    assert [job["queue"]["position"] for job in jobs[1:]] == [1, 2]

    finish(api_stack, variants[0]["job_id"], correct_rows=10)
    app = api_stack.client.app
    dispatch_in(app.state.session_factory, DispatchPolicy.from_settings(app.state.settings))
    jobs = [job_of(api_stack, key, variant["job_id"]) for variant in variants if variant["job_id"]]
    assert [job["admitted_at"] is not None for job in jobs] == [True, True, False]


def job_of(stack: Stack, key: str, job_id: str) -> dict:
    response = stack.client.get(f"/v1/jobs/{job_id}", headers=stack.headers(key))
    assert response.status_code == 200, response.text
    return response.json()


def test_a_search_study_asks_trials_as_slots_free(api_stack: Stack, team: tuple[str, dict]) -> None:
    key, base_spec = team
    search = {
        "mode": "search",
        "space": {"hyperparameters.learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True}},
        "trials": 3,
        "seed": 7,
    }
    study = create(api_stack, key, base_spec, search, metric="accuracy", max_concurrency=2)
    assert len(study["variants"]) == 2  # the base and the first trial fill both slots
    trial_rate = study["variants"][1]["overrides"]["hyperparameters"]["learning_rate"]
    assert 1e-5 <= trial_rate <= 1e-3
    for round_number in range(3):
        for variant in get(api_stack, key, study["id"])["variants"]:
            if variant["status"] == "queued":
                finish(api_stack, variant["job_id"], correct_rows=10 + 5 * round_number)
        advance(api_stack, study["id"])
    done = get(api_stack, key, study["id"])
    assert done["status"] == "succeeded"
    assert len(done["variants"]) == 4
    rates = [variant["overrides"]["hyperparameters"]["learning_rate"] for variant in done["variants"][1:]]
    assert len(set(rates)) == 3


def test_cancel_stops_running_jobs_and_pending_variants(api_stack: Stack, team: tuple[str, dict]) -> None:
    key, base_spec = team
    study = create(api_stack, key, base_spec, LIST_VARIANTS, max_concurrency=2)
    response = api_stack.client.post(f"/v1/studies/{study['id']}/cancel", headers=api_stack.headers(key))
    assert response.status_code == 202, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert [variant["status"] for variant in cancelled["variants"]] == [
        "cancelled",
        "cancelled",
        "failed",
        "cancelled",
    ]
    again = api_stack.client.post(f"/v1/studies/{study['id']}/cancel", headers=api_stack.headers(key))
    assert again.status_code == 409
    advance(api_stack, study["id"])  # a late advance submits nothing for a cancelled study
    assert len(api_stack.client.get("/v1/jobs", headers=api_stack.headers(key)).json()["items"]) == 2


def test_studies_are_listed_newest_first_and_private_to_the_team(
    api_stack: Stack, team: tuple[str, dict], tmp_path: Path
) -> None:
    key, base_spec = team
    first = create(api_stack, key, base_spec, LIST_VARIANTS, max_concurrency=1)
    second = create(
        api_stack, key, base_spec, {"mode": "list", "overrides": [{"method": "lora"}]}, max_concurrency=1
    )
    listed = api_stack.client.get("/v1/studies?limit=1", headers=api_stack.headers(key)).json()
    assert [item["id"] for item in listed["items"]] == [second["id"]]
    assert listed["items"][0]["variant_count"] == 2
    rest = api_stack.client.get(
        f"/v1/studies?cursor={listed['next_cursor']}", headers=api_stack.headers(key)
    ).json()
    assert [item["id"] for item in rest["items"]] == [first["id"]] and rest["next_cursor"] is None

    other_key, _ = make_team(api_stack, tmp_path / "other")
    for method, path in (("get", ""), ("post", "/cancel")):
        response = getattr(api_stack.client, method)(
            f"/v1/studies/{first['id']}{path}", headers=api_stack.headers(other_key)
        )
        assert response.status_code == 404, response.text
    assert api_stack.client.get("/v1/studies", headers=api_stack.headers(other_key)).json()["items"] == []


def test_refusals_name_the_field_or_the_limit(api_stack: Stack, team: tuple[str, dict]) -> None:
    key, base_spec = team

    def refused(body: dict) -> dict:
        response = api_stack.client.post("/v1/studies", json=body, headers=api_stack.headers(key))
        assert response.status_code == 422, response.text
        return response.json()["error"]

    unevaluated = refused({"base_spec": {**base_spec, "evaluation": None}, "variants": LIST_VARIANTS})
    assert unevaluated["details"]["field"] == "base_spec.evaluation"
    grid = {"hyperparameters.seed": list(range(9)), "hyperparameters.epochs": list(range(1, 9))}
    too_big = refused({"base_spec": base_spec, "variants": {"mode": "grid", "grid": grid}})
    assert "72 variants" in too_big["message"] and "at most 64" in too_big["message"]
    typo = refused(
        {"base_spec": base_spec, "variants": {"mode": "grid", "grid": {"hyperparameters.lr": [1]}}}
    )
    assert "hyperparameters.lr" in typo["message"]
    assert api_stack.client.get("/v1/studies", headers=api_stack.headers(key)).json()["items"] == []
