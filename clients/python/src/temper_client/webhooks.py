"""`client.webhooks`: endpoints that hear about the team's jobs and studies, their delivery attempts,
and `verify_signature` for the receiving side.

Every delivery is a POST of a JSON event with these headers:

    Temper-Event: job.succeeded              the event type
    Temper-Event-Id: <uuid>                  the same on every attempt: deduplicate on it
    Temper-Delivery: <uuid>                  this attempt
    Temper-Signature: t=<unix>,v1=<hex>      HMAC-SHA256(secret, "<t>.<raw body>")

A receiver answers 2xx to take it; a 5xx, a timeout or a refused connection is retried with backoff,
a 4xx is not.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator

from temper_client._http import HttpSession
from temper_client.types import WebhookDelivery, WebhookDeliveryPage, WebhookEndpoint, WebhookEndpointCreated

SIGNATURE_HEADER = "Temper-Signature"
# A delivery signed longer ago than this is refused: a captured one cannot be replayed later.
DEFAULT_TOLERANCE_S = 300.0


class InvalidSignature(ValueError):
    """The delivery was not signed with this secret, was changed, or is too old."""


def verify_signature(
    secret: str,
    signature_header: str,
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check a delivery's `Temper-Signature` header against its raw body; raise `InvalidSignature`.

    Pass the body exactly as received (bytes, before any JSON parsing).
    """
    fields: dict[str, list[str]] = {}
    for part in signature_header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError) as error:
        raise InvalidSignature("the header has no t=<unix seconds>") from error
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise InvalidSignature(f"signed at {timestamp}, more than {tolerance_s:g} s from now")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, given) for given in fields.get("v1", [])):
        raise InvalidSignature("no v1 signature matches this secret and body")


class Webhooks:
    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def create(
        self, url: str, *, events: builtins.list[str] | None = None, description: str | None = None
    ) -> WebhookEndpointCreated:
        """Register an endpoint (all event types unless `events` names some). The answer's `secret`
        is shown this once: keep it to verify deliveries."""
        body = {"url": url, "events": events, "description": description}
        data = self._http.json("POST", "/v1/webhooks", json={k: v for k, v in body.items() if v is not None})
        return WebhookEndpointCreated.model_validate(data)

    def list(self) -> builtins.list[WebhookEndpoint]:
        return [WebhookEndpoint.model_validate(item) for item in self._http.json("GET", "/v1/webhooks")]

    def get(self, endpoint_id: uuid.UUID | str) -> WebhookEndpoint:
        return WebhookEndpoint.model_validate(self._http.json("GET", f"/v1/webhooks/{endpoint_id}"))

    def update(
        self,
        endpoint_id: uuid.UUID | str,
        *,
        url: str | None = None,
        events: builtins.list[str] | None = None,
        description: str | None = None,
        active: bool | None = None,
    ) -> WebhookEndpoint:
        """Change what is given; an inactive endpoint gets no events."""
        body = {"url": url, "events": events, "description": description, "active": active}
        data = self._http.json(
            "PATCH",
            f"/v1/webhooks/{endpoint_id}",
            json={k: v for k, v in body.items() if v is not None},
            idempotent=True,
        )
        return WebhookEndpoint.model_validate(data)

    def delete(self, endpoint_id: uuid.UUID | str) -> None:
        self._http.request("DELETE", f"/v1/webhooks/{endpoint_id}")

    def deliveries(self, endpoint_id: uuid.UUID | str, *, page_size: int = 50) -> Iterator[WebhookDelivery]:
        """Every delivery attempt to the endpoint, newest first, fetched page by page."""
        cursor: str | None = None
        while True:
            page = WebhookDeliveryPage.model_validate(
                self._http.json(
                    "GET",
                    f"/v1/webhooks/{endpoint_id}/deliveries",
                    params={"cursor": cursor, "limit": page_size},
                )
            )
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def test(self, endpoint_id: uuid.UUID | str) -> WebhookDelivery:
        """Send a `webhook.test` event to the endpoint now; returns its first (pending) attempt."""
        return WebhookDelivery.model_validate(self._http.json("POST", f"/v1/webhooks/{endpoint_id}/test"))
