"""The object store failing under a running job, on Postgres + Redis + S3 with a real worker.

The worker and the API reach the S3 test server through a proxy that drops every connection on
demand. A short outage is ridden out by the stage's transient retries (the job's events show
them); an outage longer than the retry budget fails the job with `transient_exhausted` within that
budget, instead of leaving it in its stage.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.support.fault_proxy import FaultProxy, fault_proxy
from tests.support.stack import Stack, running_stack
from tests.support.tickets import tickets_spec, upload_tickets

pytestmark = pytest.mark.services

RETRY_LIMIT = 4
BACKOFF = timedelta(seconds=1)
BACKOFF_MAX = timedelta(seconds=2)
# The countdowns alone (1 + 2 + 2 + 2 s); each attempt also spends a few seconds in the S3
# client's own connection retries before the stage sees the store as unreachable.
COUNTDOWNS_S = sum(min(BACKOFF_MAX, BACKOFF * 2**retry).total_seconds() for retry in range(RETRY_LIMIT))


@pytest.fixture
def proxied(services_settings: Settings, s3_server: str) -> Iterator[tuple[Settings, FaultProxy]]:
    with fault_proxy(s3_server) as proxy:
        bucket = services_settings.resolved_object_store_url.rsplit("/", 1)[1]
        yield (
            services_settings.model_copy(
                update={
                    "object_store_url": f"s3://{proxy.address}/{bucket}",
                    "transient_retry_limit": RETRY_LIMIT,
                    "transient_retry_backoff": BACKOFF,
                    "transient_retry_backoff_max": BACKOFF_MAX,
                }
            ),
            proxy,
        )


def submit_during_outage(
    stack: Stack, proxy: FaultProxy, outage_s: float, tiny_base_model: Path, tmp_path: Path
) -> tuple[str, str]:
    """Upload while the store answers, then submit as it goes away: the validate stage's first act
    is to download the train file, and it meets the outage."""
    stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
    _, key = stack.new_team()
    train_id, test_id = upload_tickets(stack, key, tmp_path)
    spec = tickets_spec(train_id, test_id, epochs=1)
    proxy.fail_for(outage_s)
    response = stack.client.post("/v1/jobs", json=spec, headers=stack.headers(key))
    assert response.status_code == 201, response.text
    return key, response.json()["id"]


def events(stack: Stack, key: str, job_id: str) -> list[dict]:
    page = stack.client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}, headers=stack.headers(key))
    return page.json()["items"]


def test_a_short_store_outage_is_retried_and_the_job_succeeds(
    proxied: tuple[Settings, FaultProxy], tiny_base_model: Path, tmp_path: Path
) -> None:
    settings, proxy = proxied
    with running_stack(settings) as stack:
        key, job_id = submit_during_outage(stack, proxy, 8.0, tiny_base_model, tmp_path)
        job = stack.wait_for(key, job_id, timeout_s=240)
        assert job["status"] == "succeeded", job
        retries = [
            event for event in events(stack, key, job_id) if event["data"].get("code") == "store_unavailable"
        ]
        assert retries, events(stack, key, job_id)
        assert retries[0]["message"].startswith(
            "validate hit a transient error (store_unavailable); retry 1 of"
        )
        assert [event["data"]["retry"] for event in retries] == list(range(1, len(retries) + 1))
        assert job["attempt"] == 1 + len(retries)
        assert proxy.refused_connections > 0


def test_an_outage_longer_than_the_retry_budget_fails_the_job_with_transient_exhausted(
    proxied: tuple[Settings, FaultProxy], tiny_base_model: Path, tmp_path: Path
) -> None:
    settings, proxy = proxied
    with running_stack(settings) as stack:
        started = time.monotonic()
        key, job_id = submit_during_outage(stack, proxy, 600.0, tiny_base_model, tmp_path)
        job = stack.wait_for(key, job_id, timeout_s=120)
        elapsed = time.monotonic() - started
        proxy.heal()
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "transient_exhausted"
        assert job["error"]["stage"] == "validate"
        assert "store_unavailable" in job["error"]["message"]
        assert f"after {RETRY_LIMIT} retries" in job["error"]["message"]
        retries = [
            event for event in events(stack, key, job_id) if event["data"].get("code") == "store_unavailable"
        ]
        assert len(retries) == RETRY_LIMIT
        # Within the budget: the countdowns plus, per attempt, the client's own short retries.
        assert elapsed < COUNTDOWNS_S + (RETRY_LIMIT + 1) * 10, elapsed
