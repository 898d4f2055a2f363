"""Property-based requests over the whole OpenAPI document (schemathesis): every operation, with a
team key and with an admin key, against the real API on Postgres over HTTP. The one check is the
one a user notices: no answer is a server error (a 500 is a bug; see services/api/errors.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.api.main import create_app
from shared.db.migrate import upgrade
from shared.settings import Settings
from tests.support.live_api import serve
from tests.support.stack import ADMIN_KEY
from tests.support.tickets import write_rows

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is a dev dependency (scripts/setup.sh)"
)
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

# Examples per operation and caller: 46 operations x 2 keys x 25, and again with the team's own
# ids for the operations that take one (some 2,700 requests), take about 25 s here. With the
# app's path/query check removed, the own-ids round finds the NUL in /v1/jobs/{id}/metrics?name=
# that reached Postgres (a 500) within these examples.
MAX_EXAMPLES = 25


@pytest.fixture
def live_url(postgres_settings: Settings) -> Iterator[str]:
    upgrade(postgres_settings.resolved_database_url)
    with serve(create_app(postgres_settings)) as url:
        yield url


def _team_with_objects(url: str, tmp_path: Path, base_model: Path) -> tuple[str, dict[str, str]]:
    """A team key, and the ids of a dataset, a queued job and a webhook endpoint it owns: with
    them in the path, generated requests reach past the 404 into the routes' own checks."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=url) as client:
        registered = {
            "name": "tiny-bert",
            "task_family": "text-classification",
            "source": f"local:{base_model}",
        }
        client.post("/v1/base-models", json=registered, headers=admin).raise_for_status()
        team = client.post("/v1/teams", json={"name": f"fuzz-{uuid.uuid4().hex[:6]}"}, headers=admin).json()
        key = client.post(f"/v1/teams/{team['id']}/keys", json={"name": "fuzz"}, headers=admin).json()["key"]
        headers = {"Authorization": f"Bearer {key}"}
        rows = write_rows(tmp_path / "fuzz.jsonl", 30).read_bytes()
        dataset = client.post(
            "/v1/datasets", files={"file": ("fuzz.jsonl", rows)}, data={"name": "fuzz"}, headers=headers
        ).json()
        job = client.post(
            "/v1/jobs", json={"base_model": "tiny-bert", "train_dataset_id": dataset["id"]}, headers=headers
        ).json()
        endpoint = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/h"}, headers=headers).json()
    return key, {"dataset_id": dataset["id"], "job_id": job["id"], "endpoint_id": endpoint["id"]}


def test_no_operation_answers_a_server_error(live_url: str, tmp_path: Path, tiny_base_model: Path) -> None:
    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    team_key, objects = _team_with_objects(live_url, tmp_path, tiny_base_model)
    # (who, key, whether the path names the team's own objects instead of generated ids)
    callers = [("team", team_key, False), ("team, own objects", team_key, True), ("admin", ADMIN_KEY, False)]
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        streams = "text/event-stream" in str(operation.definition.raw.get("responses", {}).get("200", {}))
        for who, key, own_objects in callers:
            if own_objects and (streams or not set(objects) & {p.name for p in operation.path_parameters}):
                continue  # nothing of its own to name (or a queued job's stream, which stays open)
            # check() runs here, inside this iteration: it sees this caller's values (B023 is moot).
            headers = {"Authorization": f"Bearer {key}"}

            @given(case=operation.as_strategy())
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def check(case) -> None:
                if own_objects:  # noqa: B023
                    named = {name: objects[name] for name in case.path_parameters or {} if name in objects}
                    case.path_parameters = {**case.path_parameters, **named}
                case.call_and_validate(
                    base_url=live_url,
                    headers=headers,  # noqa: B023
                    checks=[not_a_server_error],
                    timeout=20,
                )

            try:
                check()
            except Exception as exc:  # every operation is tried; the report lists all that failed
                failures.append(f"{operation.label} ({who} key): {str(exc)[:2000]}")
    assert operations > 40
    assert failures == [], "\n\n".join(failures)
