from __future__ import annotations

import builtins
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.db.models import ApiKey, Team


class TeamRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, team_id: uuid.UUID) -> Team | None:
        return self.session.get(Team, team_id)

    def get_by_name(self, name: str) -> Team | None:
        return self.session.scalar(sa.select(Team).where(Team.name == name))

    def list(self) -> list[Team]:
        return list(self.session.scalars(sa.select(Team).order_by(Team.name)))

    def add(self, team: Team) -> Team:
        self.session.add(team)
        self.session.flush()
        return team

    def get_key_by_prefix(self, prefix: str) -> ApiKey | None:
        return self.session.scalar(sa.select(ApiKey).where(ApiKey.prefix == prefix))

    def get_key_and_team_name(self, prefix: str) -> tuple[ApiKey, str] | None:
        """The key with this prefix and its team's name, in one query (every request asks)."""
        query = (
            sa.select(ApiKey, Team.name).join(Team, Team.id == ApiKey.team_id).where(ApiKey.prefix == prefix)
        )
        row = self.session.execute(query).first()
        return (row[0], row[1]) if row is not None else None

    def get_key(self, key_id: uuid.UUID) -> ApiKey | None:
        return self.session.get(ApiKey, key_id)

    def list_keys(self, team_id: uuid.UUID) -> builtins.list[ApiKey]:
        query = sa.select(ApiKey).where(ApiKey.team_id == team_id).order_by(ApiKey.created_at)
        return list(self.session.scalars(query))

    def touch_key(self, key_id: uuid.UUID, now: datetime, unless_since: datetime) -> bool:
        """Set the key's last use to `now` unless it was already set at or after `unless_since`: one
        conditional UPDATE, so that API processes racing on a busy key write it once between them."""
        query = (
            sa.update(ApiKey)
            .where(
                ApiKey.id == key_id,
                sa.or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < unless_since),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        return self.session.execute(query).rowcount > 0  # type: ignore[attr-defined]

    def active_admin_key_ids(self) -> builtins.list[uuid.UUID]:
        """Admin keys with no revocation at all, not even one due at the end of a grace period.

        Locked (on Postgres) so that two admins revoking each other's keys at once cannot both
        see the other key as the one that remains.
        """
        query = (
            sa.select(ApiKey.id)
            .where(ApiKey.scope == "admin", ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.id)
            .with_for_update()
        )
        return list(self.session.scalars(query))

    def flush(self) -> None:
        self.session.flush()

    def add_key(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        self.session.flush()
        return key
