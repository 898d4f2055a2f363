"""Webhooks end to end with a real worker: a loopback receiver answers 500 once and 200 after, and
checks every delivery's signature with the SDK; the test event is retried after the 500 and both
attempts are listed; a job that succeeds is then delivered as `job.succeeded`. On the embedded
default and on Postgres + Redis + S3 (where the retry's countdown rides on the Redis broker)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from shared.settings import Settings
from temper_client import verify_signature
from tests.support.stack import Stack, running_stack
from tests.support.tickets import tickets_spec, upload_tickets
from tests.support.webhook_receiver import webhook_receiver


def run_webhooks(stack: Stack, base_model_dir: Path, tmp_path: Path) -> None:
    stack.register_base_model("tiny-bert", f"local:{base_model_dir}")
    _, key = stack.new_team()
    headers = stack.headers(key)
    with webhook_receiver(statuses=[500]) as receiver:
        created = stack.client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["job.succeeded"]}, headers=headers
        )
        assert created.status_code == 201, created.text
        endpoint_id, secret = created.json()["id"], created.json()["secret"]

        tested = stack.client.post(f"/v1/webhooks/{endpoint_id}/test", headers=headers)
        assert tested.status_code == 202, tested.text
        refused, accepted = receiver.wait_for(2, timeout_s=90)
        attempts = stack.client.get(f"/v1/webhooks/{endpoint_id}/deliveries", headers=headers).json()["items"]

        spec = tickets_spec(*upload_tickets(stack, key, tmp_path), epochs=1, evaluation=None)
        job = stack.client.post("/v1/jobs", json=spec, headers=headers).json()
        assert stack.wait_for(key, job["id"], timeout_s=240)["status"] == "succeeded"
        finished = receiver.wait_for(3, timeout_s=90)[2]

    for request in (refused, accepted, finished):
        verify_signature(secret, request.headers["Temper-Signature"], request.body)
    assert refused.headers["Temper-Event-Id"] == accepted.headers["Temper-Event-Id"]
    assert (refused.headers["Temper-Attempt"], accepted.headers["Temper-Attempt"]) == ("1", "2")
    second, first = attempts  # newest first
    assert (first["attempt"], first["status"], first["status_code"]) == (1, "failed", 500)
    assert first["next_retry_at"] is not None and first["error"].startswith("HTTP 500")
    assert (second["attempt"], second["status"], second["status_code"]) == (2, "succeeded", 200)

    event = json.loads(finished.body)
    assert finished.headers["Temper-Event"] == event["type"] == "job.succeeded"
    assert event["data"]["job"]["id"] == job["id"] and event["data"]["job"]["status"] == "succeeded"


def with_fast_retries(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_retry_backoff": timedelta(seconds=1)})


def test_webhooks_embedded(embedded_settings: Settings, tiny_base_model: Path, tmp_path: Path) -> None:
    with running_stack(with_fast_retries(embedded_settings)) as stack:
        run_webhooks(stack, tiny_base_model, tmp_path)


@pytest.mark.services
def test_webhooks_on_postgres_redis_s3(
    services_settings: Settings, tiny_base_model: Path, tmp_path: Path
) -> None:
    with running_stack(with_fast_retries(services_settings)) as stack:
        run_webhooks(stack, tiny_base_model, tmp_path)
