"""Teams and API keys. A key is `tmp_<prefix>_<secret>`; only an HMAC of it is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from shared.db.base import utcnow
from shared.db.models import ApiKey, Team
from shared.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from shared.teams.repository import TeamRepository
from shared.teams.scopes import Scope, allows

KEY_SCHEME = "tmp"
# A key's `last_used_at` is written at most this often: it says whether and when a key is in use
# (for an admin deciding what to revoke), which needs no finer grain than this, and a write on every
# request would put a database write on every read.
KEY_USE_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the team every read and write is scoped to, and what the key may do."""

    team_id: uuid.UUID
    team_name: str
    key_id: uuid.UUID
    key_prefix: str
    scope: str
    rate_limit_per_minute: int | None = None
    # When the key's use was last recorded (at the time it was authenticated).
    last_used_at: datetime | None = None

    def use_is_due(self, now: datetime) -> bool:
        """Whether this request's use of the key should be recorded (the last one is stale)."""
        return self.last_used_at is None or self.last_used_at < now - KEY_USE_RESOLUTION

    @property
    def is_admin(self) -> bool:
        return self.scope == Scope.ADMIN

    def allows(self, needed: Scope) -> bool:
        return allows(self.scope, needed)


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    plaintext: str


class TeamService:
    def __init__(self, session: Session, pepper: str) -> None:
        self.teams = TeamRepository(session)
        self.pepper = pepper.encode()

    def hash_key(self, plaintext: str) -> str:
        return hmac.new(self.pepper, plaintext.encode(), hashlib.sha256).hexdigest()

    def authenticate(self, plaintext: str) -> Principal:
        parts = plaintext.split("_")
        if len(parts) != 3 or parts[0] != KEY_SCHEME:
            raise NotAuthenticated("the API key is malformed; expected 'tmp_<prefix>_<secret>'")
        found = self.teams.get_key_and_team_name(parts[1])
        key = found[0] if found is not None else None
        # A future revoked_at is a rotated key's grace period: it still works until then.
        if key is None or (key.revoked_at is not None and key.revoked_at <= utcnow()):
            raise NotAuthenticated("the API key is unknown or revoked")
        if not hmac.compare_digest(key.key_hash, self.hash_key(plaintext)):
            raise NotAuthenticated("the API key is unknown or revoked")
        assert found is not None
        return Principal(
            team_id=key.team_id,
            team_name=found[1],
            key_id=key.id,
            key_prefix=key.prefix,
            scope=key.scope,
            rate_limit_per_minute=key.rate_limit_per_minute,
            last_used_at=key.last_used_at,
        )

    def create_team(self, name: str, max_concurrent_jobs: int | None = None) -> Team:
        if self.teams.get_by_name(name) is not None:
            raise Conflict(f"a team named '{name}' already exists", details={"field": "name"})
        return self.teams.add(Team(name=name, max_concurrent_jobs=max_concurrent_jobs))

    def get_team(self, team_id: uuid.UUID) -> Team:
        team = self.teams.get(team_id)
        if team is None:
            raise NotFound(f"team {team_id} not found")
        return team

    def list_teams(self) -> list[Team]:
        return self.teams.list()

    def issue_key(
        self,
        team_id: uuid.UUID,
        name: str,
        scope: Scope = Scope.WRITE,
        plaintext: str | None = None,
        rate_limit_per_minute: int | None = None,
    ) -> IssuedKey:
        """Create a key. `plaintext` lets an operator install a known bootstrap key."""
        self.get_team(team_id)
        if plaintext is None:
            plaintext = f"{KEY_SCHEME}_{secrets.token_hex(6)}_{secrets.token_urlsafe(24).replace('_', '-')}"
        parts = plaintext.split("_")
        if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) > 16 or len(parts[2]) < 16:
            raise InvalidInput("an API key must look like 'tmp_<prefix up to 16>_<secret of 16+>'")
        if self.teams.get_key_by_prefix(parts[1]) is not None:
            raise Conflict("an API key with this prefix already exists")
        key = ApiKey(
            team_id=team_id,
            name=name,
            prefix=parts[1],
            key_hash=self.hash_key(plaintext),
            scope=str(scope),
            rate_limit_per_minute=rate_limit_per_minute,
        )
        return IssuedKey(key=self.teams.add_key(key), plaintext=plaintext)

    def list_keys(self, team_id: uuid.UUID) -> list[ApiKey]:
        self.get_team(team_id)
        return self.teams.list_keys(team_id)

    def get_key(self, key_id: uuid.UUID) -> ApiKey:
        key = self.teams.get_key(key_id)
        if key is None:
            raise NotFound(f"API key {key_id} not found")
        return key

    def revoke_key(self, key_id: uuid.UUID) -> ApiKey:
        key = self.get_key(key_id)
        now = utcnow()
        if key.scope == Scope.ADMIN and (key.revoked_at is None or key.revoked_at > now):
            self._keep_an_admin(key)
        # Revoking a key in its rotation grace period ends the grace period now.
        if key.revoked_at is None or key.revoked_at > now:
            key.revoked_at = now
        self.teams.flush()
        return key

    def _keep_an_admin(self, leaving: ApiKey) -> None:
        """Refuse to end the last admin key: with none left no one could issue keys or act as admin
        (short of writing to the database). Only keys with no revocation scheduled count: one in a
        rotation's grace period is about to stop. Rotation itself is never refused by this rule,
        since it issues an admin key in the old one's place."""
        if not [key_id for key_id in self.teams.active_admin_key_ids() if key_id != leaving.id]:
            raise Conflict(
                f"API key {leaving.prefix} is the last active admin key; issue another admin key "
                f"first (POST /v1/teams/{{team_id}}/keys with scopes ['admin'], or `temper admin "
                f"keys create <team id> --admin`), or rotate this one (POST /v1/keys/{leaving.id}/rotate)",
                details={"key_id": str(leaving.id), "reason": "last_admin_key"},
            )

    def rotate_key(self, key_id: uuid.UUID, grace: timedelta = timedelta(0)) -> IssuedKey:
        """A new secret with the old key's team, name, scope and rate limit; the old key stops
        working after `grace` (at once by default), so that callers can switch over first."""
        old = self.get_key(key_id)
        if old.revoked_at is not None and old.revoked_at <= utcnow():
            raise Conflict(f"API key {key_id} is revoked; issue a new key instead")
        issued = self.issue_key(
            old.team_id,
            old.name,
            scope=Scope(old.scope),
            rate_limit_per_minute=old.rate_limit_per_minute,
        )
        old.revoked_at = utcnow() + grace
        self.teams.flush()
        return issued

    def ensure_bootstrap_admin(self, plaintext: str, team_name: str = "admin") -> Principal:
        """Install the operator's bootstrap admin key (idempotent): the first key of a new install."""
        team = self.teams.get_by_name(team_name) or self.create_team(team_name)
        prefix = plaintext.split("_")[1] if plaintext.count("_") == 2 else ""
        existing = self.teams.get_key_by_prefix(prefix) if prefix else None
        if existing is None:
            self.issue_key(team.id, "bootstrap admin", scope=Scope.ADMIN, plaintext=plaintext)
        return self.authenticate(plaintext)


def record_key_use(session: Session, key_id: uuid.UUID, now: datetime | None = None) -> bool:
    """Record that the key was used now, unless a use within KEY_USE_RESOLUTION is recorded already.

    A function, not a TeamService method: it needs no pepper, and the API calls it after the answer.
    """
    now = now or utcnow()
    return TeamRepository(session).touch_key(key_id, now, now - KEY_USE_RESOLUTION)
