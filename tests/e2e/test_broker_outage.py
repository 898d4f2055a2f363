"""Redis goes away for a few seconds in the middle of a job and comes back: the job still ends,
succeeded or failed with a reason, and never stays in a stage.

Every process reaches Redis through a proxy that drops all connections while it fails. What the
outage breaks depends on where the job is: a worker's consumer reconnects by itself, but a stage
that finishes meanwhile cannot send the next one; the reaper (a celery beat task, run inside the
worker with thresholds of seconds) sends it again once Redis is back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.conftest import REDIS_URL
from tests.support.fault_proxy import FaultProxy, fault_proxy
from tests.support.stack import running_stack
from tests.support.tickets import tickets_spec, upload_tickets

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]

OUTAGE_S = 6.0


@pytest.fixture
def proxied_redis(services_settings: Settings) -> Iterator[tuple[Settings, FaultProxy]]:
    redis_address = REDIS_URL.removeprefix("redis://").split("/", 1)[0]
    with fault_proxy(redis_address) as proxy:
        yield (
            services_settings.model_copy(
                update={
                    "broker_url": f"redis://{proxy.address}/0",
                    "reaper_interval": timedelta(seconds=1),
                    "heartbeat_interval": timedelta(seconds=1),
                    "stage_pickup_timeout": timedelta(seconds=5),
                    "heartbeat_timeout": timedelta(seconds=30),
                }
            ),
            proxy,
        )


def test_a_redis_outage_mid_job_never_leaves_the_job_in_a_stage(
    proxied_redis: tuple[Settings, FaultProxy], tiny_base_model: Path, tmp_path: Path
) -> None:
    settings, proxy = proxied_redis
    with running_stack(settings, with_beat=True) as stack:
        stack.register_base_model("tiny-bert", f"local:{tiny_base_model}")
        _, key = stack.new_team()
        train_id, test_id = upload_tickets(stack, key, tmp_path)
        response = stack.client.post(
            "/v1/jobs", json=tickets_spec(train_id, test_id, epochs=1), headers=stack.headers(key)
        )
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        stack.wait_for(key, job_id, statuses={"training", "evaluating", "succeeded", "failed"}, timeout_s=120)

        proxy.fail_for(OUTAGE_S)
        job = stack.wait_for(key, job_id, timeout_s=200)

        assert proxy.refused_connections > 0, "the outage never touched the broker's clients"
        assert job["status"] in {"succeeded", "failed"}, job
        if job["status"] == "failed":
            assert job["error"]["code"] and job["error"]["message"], job
