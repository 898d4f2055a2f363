"""The rules of webhooks: which endpoints a team may register, which events reach them, and how an
event becomes a delivery.

An event (a job or a study of the team reaching a subscribed state) is recorded as one pending
delivery per subscribed endpoint in the same transaction as the change that caused it, and its
sending is put on the outbox: it leaves only once that change is committed, and a rolled-back
change sends nothing. Routes, the job service and the study service call this; it only flushes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from shared.db.base import utcnow
from shared.db.models import Job, Study, WebhookDelivery, WebhookEndpoint
from shared.db.outbox import DeliverWebhook, outbox
from shared.db.pagination import decode_cursor, encode_cursor
from shared.errors import InvalidInput, NotFound
from shared.webhooks.events import (
    EVENT_TYPES,
    TEST_EVENT,
    job_data,
    job_event_type,
    study_data,
    study_event_type,
    test_data,
)
from shared.webhooks.repository import WebhookRepository
from shared.webhooks.secret_box import SecretBox
from shared.webhooks.signing import new_secret


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    # The signing secret, for the one answer that shows it.
    secret: str


class WebhookService:
    def __init__(self, session: Session, secrets: SecretBox | None = None) -> None:
        self.session = session
        self.webhooks = WebhookRepository(session)
        # Only creating an endpoint needs the key-encryption keys; reads and events do not.
        self.secrets = secrets

    # Endpoints ------------------------------------------------------------------------------------

    def create(
        self, team_id: uuid.UUID, url: str, events: list[str] | None = None, description: str | None = None
    ) -> CreatedEndpoint:
        if self.secrets is None:
            raise RuntimeError("WebhookService needs the secret box to create an endpoint")
        secret = new_secret()
        endpoint = WebhookEndpoint(
            team_id=team_id,
            url=check_url(url),
            description=description,
            secret_encrypted=self.secrets.encrypt(secret),
            events=check_events(events if events is not None else list(EVENT_TYPES)),
            active=True,
        )
        self.webhooks.add(endpoint)
        return CreatedEndpoint(endpoint=endpoint, secret=secret)

    def get(self, team_id: uuid.UUID, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        endpoint = self.webhooks.get_for_team(team_id, endpoint_id)
        if endpoint is None:
            raise NotFound(f"webhook endpoint {endpoint_id} not found")
        return endpoint

    def endpoints(self, team_id: uuid.UUID) -> list[WebhookEndpoint]:
        return self.webhooks.list_for_team(team_id)

    def update(
        self,
        team_id: uuid.UUID,
        endpoint_id: uuid.UUID,
        *,
        url: str | None = None,
        events: list[str] | None = None,
        description: str | None = None,
        active: bool | None = None,
    ) -> WebhookEndpoint:
        endpoint = self.get(team_id, endpoint_id)
        if url is not None:
            endpoint.url = check_url(url)
        if events is not None:
            endpoint.events = check_events(events)
        if description is not None:
            endpoint.description = description
        if active is not None:
            endpoint.active = active
        self.session.flush()
        return endpoint

    def delete(self, team_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
        """The endpoint and its delivery history go; a delivery already on its way finds nothing
        to send."""
        self.webhooks.delete(self.get(team_id, endpoint_id))

    def deliveries(
        self, team_id: uuid.UUID, endpoint_id: uuid.UUID, cursor: str | None, limit: int
    ) -> tuple[list[WebhookDelivery], str | None]:
        """The endpoint's delivery attempts, newest first, a page at a time."""
        self.get(team_id, endpoint_id)
        before = decode_cursor(cursor) if cursor else None
        rows = self.webhooks.list_deliveries(endpoint_id, before=before, limit=limit + 1)
        last = rows[limit - 1] if len(rows) > limit else None
        return rows[:limit], encode_cursor(last.created_at, last.id) if last else None

    def send_test(self, team_id: uuid.UUID, endpoint_id: uuid.UUID) -> WebhookDelivery:
        """A `webhook.test` event to this endpoint alone, whatever it subscribes to."""
        endpoint = self.get(team_id, endpoint_id)
        return self._deliver(endpoint, uuid.uuid4(), TEST_EVENT, test_data(endpoint.id))

    def reencrypt_secrets(self) -> tuple[int, int]:
        """Move every endpoint's secret under the newest key; returns (moved, endpoints).

        Run after putting a new key first in TEMPER_WEBHOOK_SECRET_KEYS: once it is done, no row
        needs the older keys and they can be removed.
        """
        if self.secrets is None:
            raise RuntimeError("WebhookService needs the secret box to re-encrypt")
        moved = 0
        endpoints = self.webhooks.all_endpoints()
        for endpoint in endpoints:
            if not self.secrets.is_current(endpoint.secret_encrypted):
                endpoint.secret_encrypted = self.secrets.reencrypt(endpoint.secret_encrypted)
                moved += 1
        self.session.flush()
        return moved, len(endpoints)

    # Events ---------------------------------------------------------------------------------------

    def job_finished(self, job: Job) -> list[WebhookDelivery]:
        event_type = job_event_type(job)
        return self.emit(job.team_id, event_type, job_data(job)) if event_type else []

    def study_finished(self, study: Study) -> list[WebhookDelivery]:
        event_type = study_event_type(study)
        return self.emit(study.team_id, event_type, study_data(study)) if event_type else []

    def emit(self, team_id: uuid.UUID, event_type: str, data: dict[str, Any]) -> list[WebhookDelivery]:
        """One pending delivery per active endpoint of the team that subscribes to `event_type`."""
        event_id = uuid.uuid4()
        return [
            self._deliver(endpoint, event_id, event_type, data)
            for endpoint in self.webhooks.active_for_team(team_id)
            if event_type in endpoint.events
        ]

    def _deliver(
        self, endpoint: WebhookEndpoint, event_id: uuid.UUID, event_type: str, data: dict[str, Any]
    ) -> WebhookDelivery:
        delivery = WebhookDelivery(
            endpoint_id=endpoint.id,
            event_id=event_id,
            event_type=event_type,
            payload={
                "id": str(event_id),
                "type": event_type,
                "created_at": utcnow().isoformat(),
                "team_id": str(endpoint.team_id),
                "data": data,
            },
            attempt=1,
            status="pending",
        )
        self.webhooks.add(delivery)
        outbox(self.session).add(DeliverWebhook(delivery.id))
        return delivery


def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            "url must be an http:// or https:// URL with a host, e.g. https://hooks.example.com/temper",
            details={"field": "url"},
        )
    return url.strip()


def check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(
            f"unknown event types {unknown}; choose from {list(EVENT_TYPES)}", details={"field": "events"}
        )
    if not events:
        raise InvalidInput("subscribe to at least one event type", details={"field": "events"})
    return list(dict.fromkeys(events))
