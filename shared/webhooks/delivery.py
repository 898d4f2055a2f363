"""One delivery attempt over HTTP, and what follows it: recorded, and retried with backoff when the
endpoint could not take it (a 5xx, a timeout, a refused or broken connection), never after a 4xx.

The worker's `webhooks.deliver` task calls `deliver`. The attempt is read and recorded in two short
transactions with the HTTP call between them, so no row is locked while a slow endpoint answers.
Delivery is at least once: a worker lost between the answer and the record sends the attempt
again, so receivers deduplicate on `Temper-Event-Id`. The secret signs the body and goes nowhere
else: not into logs, not into errors.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy.orm import Session, sessionmaker

from shared.db.base import utcnow
from shared.db.models import WebhookDelivery
from shared.db.outbox import DeliverWebhook, outbox
from shared.db.session import session_scope
from shared.webhooks.events import TEST_EVENT
from shared.webhooks.repository import WebhookRepository
from shared.webhooks.secret_box import SecretBox, SecretUnreadable
from shared.webhooks.signing import SIGNATURE_HEADER, signature_header

log = structlog.get_logger(__name__)

USER_AGENT = "Temper-Webhooks/1"
# How much of an endpoint's refusal is kept with the attempt.
MAX_ANSWER_CHARS = 300


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_s: float = 10.0
    # Attempts in all, the first included; the wait before attempt n+1 doubles from `backoff_s`.
    max_attempts: int = 8
    backoff_s: float = 30.0
    backoff_max_s: float = 3600.0

    def backoff(self, attempt: int) -> float:
        """Seconds between attempt `attempt` (1-based) and the next."""
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class AttemptOutcome:
    succeeded: bool
    retryable: bool
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True)
class _Attempt:
    url: str
    secret: str
    body: bytes
    headers: dict[str, str]


class WebhookSender:
    """Posts signed deliveries; one per worker process (it keeps a connection pool)."""

    def __init__(self, timeout_s: float, transport: httpx.BaseTransport | None = None) -> None:
        self.client = httpx.Client(
            timeout=timeout_s, follow_redirects=False, transport=transport, headers={"User-Agent": USER_AGENT}
        )
        self.timeout_s = timeout_s

    def close(self) -> None:
        self.client.close()

    def post(self, url: str, secret: str, body: bytes, headers: dict[str, str]) -> AttemptOutcome:
        signed = {
            **headers,
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(secret, int(time.time()), body),
        }
        started = time.perf_counter()
        try:
            response = self.client.post(url, content=body, headers=signed)
        except httpx.TimeoutException:
            return _failed(None, f"no answer within {self.timeout_s:g} s", True, started)
        except httpx.TransportError as error:
            return _failed(None, f"{type(error).__name__}: {error}", True, started)
        code = response.status_code
        if 200 <= code < 300:
            return AttemptOutcome(True, False, code, None, _elapsed_ms(started))
        answer = " ".join(response.text.split())[:MAX_ANSWER_CHARS]
        if 300 <= code < 400:
            return _failed(
                code, f"HTTP {code}: redirects are not followed; register the final URL", False, started
            )
        return _failed(code, f"HTTP {code}: {answer}" if answer else f"HTTP {code}", code >= 500, started)


def deliver(
    session_factory: sessionmaker[Session],
    sender: WebhookSender,
    delivery_id: uuid.UUID,
    policy: DeliveryPolicy,
    secrets: SecretBox,
) -> str | None:
    """Send one pending attempt and record it (and the next one, when it is worth retrying).
    Returns the attempt's status; None when there was nothing to send."""
    with session_scope(session_factory) as session:
        attempt = _pending_attempt(session, delivery_id, secrets)
    if attempt is None:
        return None
    outcome = sender.post(attempt.url, attempt.secret, attempt.body, attempt.headers)
    with session_scope(session_factory) as session:
        status = record_attempt(session, delivery_id, outcome, policy)
    log.info(
        "webhook attempt",
        delivery_id=str(delivery_id),
        host=urlsplit(attempt.url).hostname,
        status=status,
        status_code=outcome.status_code,
        duration_ms=outcome.duration_ms,
    )
    return status


def _pending_attempt(session: Session, delivery_id: uuid.UUID, secrets: SecretBox) -> _Attempt | None:
    webhooks = WebhookRepository(session)
    delivery = webhooks.get_delivery(delivery_id)
    # Gone with its endpoint, or already sent (the task was delivered twice).
    if delivery is None or delivery.status != "pending":
        return None
    endpoint = webhooks.get_endpoint(delivery.endpoint_id)
    if endpoint is None:
        return None
    if not endpoint.active and delivery.event_type != TEST_EVENT:
        _finish(delivery, "failed", None, "the endpoint was deactivated; not sent", None)
        return None
    try:
        secret = secrets.decrypt(endpoint.secret_encrypted)
    except SecretUnreadable as exc:
        # No retry can help until an operator restores the key: the attempt fails, saying why.
        log.error("webhook secret unreadable", endpoint_id=str(endpoint.id), error=str(exc))
        _finish(delivery, "failed", None, str(exc), None)
        return None
    if not secrets.is_current(endpoint.secret_encrypted):
        # Encrypted under an older key: moved to the newest one as it is used (the rest move with
        # `temper db reencrypt-webhook-secrets`), so that old keys can leave the settings.
        endpoint.secret_encrypted = secrets.encrypt(secret)
    return _Attempt(
        url=endpoint.url,
        secret=secret,
        body=json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode(),
        headers={
            "Temper-Event": delivery.event_type,
            "Temper-Event-Id": str(delivery.event_id),
            "Temper-Delivery": str(delivery.id),
            "Temper-Attempt": str(delivery.attempt),
        },
    )


def record_attempt(
    session: Session, delivery_id: uuid.UUID, outcome: AttemptOutcome, policy: DeliveryPolicy
) -> str | None:
    """Record how the attempt went; schedule the next one (after commit) when it may yet succeed."""
    webhooks = WebhookRepository(session)
    delivery = webhooks.get_delivery(delivery_id)
    if delivery is None:
        return None  # the endpoint was deleted while the attempt was on its way
    if delivery.status != "pending":
        return delivery.status  # another worker recorded this attempt first
    if outcome.succeeded:
        _finish(delivery, "succeeded", outcome.status_code, None, outcome.duration_ms)
        return delivery.status
    _finish(delivery, "failed", outcome.status_code, outcome.error, outcome.duration_ms)
    endpoint = webhooks.get_endpoint(delivery.endpoint_id)
    if (
        outcome.retryable
        and delivery.attempt < policy.max_attempts
        and endpoint is not None
        and endpoint.active
    ):
        wait = policy.backoff(delivery.attempt)
        delivery.next_retry_at = utcnow() + timedelta(seconds=wait)
        retry = WebhookDelivery(
            endpoint_id=delivery.endpoint_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            payload=delivery.payload,
            attempt=delivery.attempt + 1,
            status="pending",
        )
        webhooks.add(retry)
        outbox(session).add(DeliverWebhook(retry.id, countdown=wait))
    return delivery.status


def _finish(
    delivery: WebhookDelivery,
    status: str,
    status_code: int | None,
    error: str | None,
    duration_ms: int | None,
) -> None:
    delivery.status = status
    delivery.status_code = status_code
    delivery.error = error
    delivery.duration_ms = duration_ms
    delivery.finished_at = utcnow()


def _failed(status_code: int | None, error: str, retryable: bool, started: float) -> AttemptOutcome:
    return AttemptOutcome(False, retryable, status_code, error, _elapsed_ms(started))


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
