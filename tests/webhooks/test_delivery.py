"""One webhook attempt at a time, against a real HTTP receiver on loopback: signed so that the SDK's
`verify_signature` accepts it, recorded, retried with backoff after a 5xx, a timeout or a refused
connection (the next attempt scheduled on the outbox), never after a 4xx, and capped. The secret
appears in no log line."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from shared.db.models import WebhookDelivery
from shared.db.outbox import DeliverWebhook
from shared.webhooks.delivery import DeliveryPolicy, WebhookSender, deliver
from shared.webhooks.secret_box import SecretBox
from shared.webhooks.service import WebhookService
from temper_client import InvalidSignature, verify_signature
from tests.support.job_rows import JobDatabase, job_database
from tests.support.live_api import free_port
from tests.support.webhook_receiver import webhook_receiver

POLICY = DeliveryPolicy(timeout_s=1.0, max_attempts=3, backoff_s=2.0, backoff_max_s=3.0)
SECRETS = SecretBox(["a-test-key-encryption-key-of-32-characters-or-more"])


@pytest.fixture
def db(tmp_path: Path, tiny_base_model: Path) -> JobDatabase:
    return job_database(tmp_path, tiny_base_model)


@pytest.fixture
def sender() -> Iterator[WebhookSender]:
    sender = WebhookSender(timeout_s=POLICY.timeout_s)
    yield sender
    sender.close()


def register(db: JobDatabase, url: str) -> tuple[uuid.UUID, str]:
    with db.session() as session:
        created = WebhookService(session, SECRETS).create(db.team_id, url, events=["job.failed"])
        return created.endpoint.id, created.secret


def send_test(db: JobDatabase, endpoint_id: uuid.UUID) -> uuid.UUID:
    with db.session() as session:
        delivery_id = WebhookService(session).send_test(db.team_id, endpoint_id).id
    assert db.effects.effects == [DeliverWebhook(delivery_id)]
    db.effects.effects.clear()
    return delivery_id


def attempts(db: JobDatabase, endpoint_id: uuid.UUID) -> list[WebhookDelivery]:
    with db.session() as session:
        rows, _ = WebhookService(session).deliveries(db.team_id, endpoint_id, None, 100)
    return sorted(rows, key=lambda row: row.attempt)


def test_a_500_is_retried_with_backoff_and_every_attempt_is_signed_and_recorded(
    db: JobDatabase, sender: WebhookSender
) -> None:
    with webhook_receiver(statuses=[500]) as receiver:
        endpoint_id, secret = register(db, receiver.url)
        first = send_test(db, endpoint_id)

        assert deliver(db.session_factory, sender, first, POLICY, SECRETS) == "failed"
        [retry] = db.effects.effects
        assert isinstance(retry, DeliverWebhook) and retry.countdown == 2.0
        assert deliver(db.session_factory, sender, retry.delivery_id, POLICY, SECRETS) == "succeeded"

    failed, succeeded = attempts(db, endpoint_id)
    assert (failed.attempt, failed.status, failed.status_code) == (1, "failed", 500)
    assert failed.error == "HTTP 500: receiver says no" and failed.next_retry_at is not None
    assert (succeeded.attempt, succeeded.status, succeeded.status_code) == (2, "succeeded", 200)
    assert succeeded.error is None and succeeded.next_retry_at is None and succeeded.duration_ms is not None
    assert failed.event_id == succeeded.event_id

    for number, request in enumerate(receiver.requests, start=1):
        verify_signature(secret, request.headers["Temper-Signature"], request.body)
        assert request.headers["Temper-Event"] == "webhook.test"
        assert request.headers["Temper-Event-Id"] == str(failed.event_id)
        assert request.headers["Temper-Attempt"] == str(number)
        assert json.loads(request.body)["type"] == "webhook.test"
        with pytest.raises(InvalidSignature):
            verify_signature(secret, request.headers["Temper-Signature"], request.body + b" ")
        with pytest.raises(InvalidSignature):
            verify_signature("whsec_other", request.headers["Temper-Signature"], request.body)


def test_a_4xx_is_recorded_and_not_retried(db: JobDatabase, sender: WebhookSender) -> None:
    with webhook_receiver(statuses=[410]) as receiver:
        endpoint_id, _ = register(db, receiver.url)
        assert deliver(db.session_factory, sender, send_test(db, endpoint_id), POLICY, SECRETS) == "failed"

    [attempt] = attempts(db, endpoint_id)
    assert attempt.status_code == 410 and attempt.next_retry_at is None
    assert db.effects.effects == []


def test_timeouts_and_refused_connections_are_retried_up_to_the_cap(
    db: JobDatabase, sender: WebhookSender
) -> None:
    with webhook_receiver(delay_s=2.0) as slow:
        endpoint_id, _ = register(db, slow.url)
        delivery_id = send_test(db, endpoint_id)
        assert deliver(db.session_factory, sender, delivery_id, POLICY, SECRETS) == "failed"
    with db.session() as session:
        WebhookService(session).update(db.team_id, endpoint_id, url=f"http://127.0.0.1:{free_port()}/gone")
    for _ in range(POLICY.max_attempts - 1):
        [retry] = db.effects.effects
        db.effects.effects.clear()
        assert isinstance(retry, DeliverWebhook)
        assert deliver(db.session_factory, sender, retry.delivery_id, POLICY, SECRETS) == "failed"

    timed_out, refused, last = attempts(db, endpoint_id)
    assert timed_out.error == "no answer within 1 s" and timed_out.status_code is None
    assert refused.error is not None and refused.error.startswith("ConnectError")
    assert last.attempt == POLICY.max_attempts and last.next_retry_at is None
    assert db.effects.effects == []  # the cap is reached: nothing more is scheduled


def test_an_attempt_already_sent_is_not_sent_again(db: JobDatabase, sender: WebhookSender) -> None:
    with webhook_receiver() as receiver:
        endpoint_id, _ = register(db, receiver.url)
        delivery_id = send_test(db, endpoint_id)
        assert deliver(db.session_factory, sender, delivery_id, POLICY, SECRETS) == "succeeded"
        # The same task delivered twice (acks_late after a lost worker): the row says it is done.
        assert deliver(db.session_factory, sender, delivery_id, POLICY, SECRETS) is None
        assert len(receiver.requests) == 1


def test_the_secret_is_never_logged(db: JobDatabase, sender: WebhookSender) -> None:
    with webhook_receiver(statuses=[503]) as receiver, structlog.testing.capture_logs() as logs:
        endpoint_id, secret = register(db, receiver.url)
        deliver(db.session_factory, sender, send_test(db, endpoint_id), POLICY, SECRETS)
    assert logs and all(secret not in json.dumps(entry, default=str) for entry in logs)
    assert all(secret not in (attempt.error or "") for attempt in attempts(db, endpoint_id))
