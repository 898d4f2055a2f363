"""Webhooks over REST: register an endpoint (its signing secret is shown once), list, change and
delete endpoints, read their delivery attempts, and send a test event."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from services.api import schemas
from services.api.deps import AuditorDep, ReadDep, SessionDep, SettingsDep, WriteDep
from services.api.openapi import errors
from shared.redaction import redact_url
from shared.webhooks.secret_box import SecretBox
from shared.webhooks.service import WebhookService

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post(
    "",
    response_model=schemas.WebhookEndpointCreated,
    status_code=status.HTTP_201_CREATED,
    operation_id="webhooks_create",
    responses=errors(403, 422),
)
def create_webhook(
    body: schemas.WebhookCreate,
    session: SessionDep,
    settings: SettingsDep,
    principal: WriteDep,
    audit: AuditorDep,
) -> object:
    """Register an endpoint for the team's job and study events. The answer holds the signing secret:
    it is never shown again."""
    service = WebhookService(session, SecretBox.from_settings(settings))
    created = service.create(principal.team_id, body.url, body.events, body.description)
    audit.record(
        "webhook.create",
        "webhook",
        created.endpoint.id,
        {"url": redact_url(created.endpoint.url), "events": created.endpoint.events},
    )
    endpoint = schemas.WebhookEndpoint.model_validate(created.endpoint)
    return schemas.WebhookEndpointCreated(**endpoint.model_dump(), secret=created.secret)


@router.get(
    "", response_model=list[schemas.WebhookEndpoint], operation_id="webhooks_list", responses=errors()
)
def list_webhooks(session: SessionDep, principal: ReadDep) -> object:
    return WebhookService(session).endpoints(principal.team_id)


@router.get(
    "/{endpoint_id}",
    response_model=schemas.WebhookEndpoint,
    operation_id="webhooks_get",
    responses=errors(404, 422),
)
def get_webhook(endpoint_id: uuid.UUID, session: SessionDep, principal: ReadDep) -> object:
    return WebhookService(session).get(principal.team_id, endpoint_id)


@router.patch(
    "/{endpoint_id}",
    response_model=schemas.WebhookEndpoint,
    operation_id="webhooks_update",
    responses=errors(403, 404, 422),
)
def update_webhook(
    endpoint_id: uuid.UUID,
    body: schemas.WebhookUpdate,
    session: SessionDep,
    principal: WriteDep,
    audit: AuditorDep,
) -> object:
    """Change an endpoint's URL, events or description, or (de)activate it; the secret stays."""
    endpoint = WebhookService(session).update(
        principal.team_id,
        endpoint_id,
        url=body.url,
        events=body.events,
        description=body.description,
        active=body.active,
    )
    changes = body.model_dump(exclude_unset=True)
    if changes.get("url") is not None:
        changes["url"] = redact_url(changes["url"])
    audit.record("webhook.update", "webhook", endpoint_id, changes)
    return endpoint


@router.delete(
    "/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="webhooks_delete",
    responses=errors(403, 404, 422),
)
def delete_webhook(
    endpoint_id: uuid.UUID, session: SessionDep, principal: WriteDep, audit: AuditorDep
) -> Response:
    """Delete an endpoint and its delivery history; attempts not yet sent are dropped."""
    WebhookService(session).delete(principal.team_id, endpoint_id)
    audit.record("webhook.delete", "webhook", endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=schemas.WebhookDeliveryPage,
    operation_id="webhooks_deliveries_list",
    responses=errors(404, 422),
)
def list_deliveries(
    endpoint_id: uuid.UUID,
    session: SessionDep,
    principal: ReadDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> object:
    """Every delivery attempt to the endpoint, newest first: status code, error, duration, next retry."""
    items, next_cursor = WebhookService(session).deliveries(principal.team_id, endpoint_id, cursor, limit)
    return {"items": items, "next_cursor": next_cursor}


@router.post(
    "/{endpoint_id}/test",
    response_model=schemas.WebhookDelivery,
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="webhooks_test",
    responses=errors(403, 404, 422),
)
def send_test_event(
    endpoint_id: uuid.UUID, session: SessionDep, principal: WriteDep, audit: AuditorDep
) -> object:
    """Send a `webhook.test` event to the endpoint now (signed and retried like any other)."""
    delivery = WebhookService(session).send_test(principal.team_id, endpoint_id)
    # Audited like any change: a test event makes Temper send a signed request to a URL of the
    # caller's choosing, which is worth knowing about when an endpoint is misused.
    audit.record("webhook.test", "webhook", endpoint_id, {"delivery_id": str(delivery.id)})
    return delivery
