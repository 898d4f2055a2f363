"""Every query on webhook endpoints and their deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.db.models import WebhookDelivery, WebhookEndpoint


class WebhookRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: WebhookEndpoint | WebhookDelivery) -> None:
        self.session.add(row)
        self.session.flush()

    def delete(self, endpoint: WebhookEndpoint) -> None:
        self.session.delete(endpoint)
        self.session.flush()

    def get_for_team(self, team_id: uuid.UUID, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
        query = sa.select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.team_id == team_id
        )
        return self.session.scalar(query)

    def list_for_team(self, team_id: uuid.UUID) -> list[WebhookEndpoint]:
        query = (
            sa.select(WebhookEndpoint)
            .where(WebhookEndpoint.team_id == team_id)
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
        return list(self.session.scalars(query))

    def active_for_team(self, team_id: uuid.UUID) -> list[WebhookEndpoint]:
        query = sa.select(WebhookEndpoint).where(
            WebhookEndpoint.team_id == team_id, WebhookEndpoint.active.is_(True)
        )
        return list(self.session.scalars(query))

    def all_endpoints(self) -> list[WebhookEndpoint]:
        query = sa.select(WebhookEndpoint).order_by(WebhookEndpoint.id).with_for_update()
        return list(self.session.scalars(query))

    def get_delivery(self, delivery_id: uuid.UUID) -> WebhookDelivery | None:
        return self.session.get(WebhookDelivery, delivery_id)

    def get_endpoint(self, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
        return self.session.get(WebhookEndpoint, endpoint_id)

    def list_deliveries(
        self, endpoint_id: uuid.UUID, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[WebhookDelivery]:
        """Newest first, a page at a time (`before` is the last row of the previous page)."""
        query = sa.select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        if before is not None:
            created_at, delivery_id = before
            query = query.where(
                sa.or_(
                    WebhookDelivery.created_at < created_at,
                    sa.and_(WebhookDelivery.created_at == created_at, WebhookDelivery.id < delivery_id),
                )
            )
        query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)
        return list(self.session.scalars(query))
