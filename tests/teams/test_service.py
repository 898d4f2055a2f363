"""Teams and API keys: only an HMAC of a key is stored, a revoked key stops working at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from shared.db.models import ApiKey
from shared.errors import Conflict, NotAuthenticated
from shared.teams.service import TeamService
from tests.support.job_rows import JobDatabase, job_database

PEPPER = "a-test-pepper"


@pytest.fixture
def db(tmp_path: Path, tiny_base_model: Path) -> JobDatabase:
    return job_database(tmp_path, tiny_base_model)


def test_a_key_authenticates_its_team_and_only_its_hash_is_stored(db: JobDatabase) -> None:
    with db.session() as session:
        teams = TeamService(session, PEPPER)
        team = teams.create_team("research")
        issued = teams.issue_key(team.id, "ci")
        plaintext = issued.plaintext
    with db.session() as session:
        principal = TeamService(session, PEPPER).authenticate(plaintext)
        assert principal.team_name == "research" and not principal.is_admin
        stored = session.scalars(sa.select(ApiKey).where(ApiKey.id == principal.key_id)).one()
        assert plaintext not in (stored.key_hash, stored.prefix) and plaintext.split("_")[1] == stored.prefix


@pytest.mark.parametrize("tampered", ["tmp_nope_secret", "not-a-key", "tmp_{prefix}_wrong-secret"])
def test_a_wrong_key_is_refused(db: JobDatabase, tampered: str) -> None:
    with db.session() as session:
        teams = TeamService(session, PEPPER)
        issued = teams.issue_key(teams.create_team("ops").id, "ci")
        prefix = issued.key.prefix
    with db.session() as session, pytest.raises(NotAuthenticated):
        TeamService(session, PEPPER).authenticate(tampered.format(prefix=prefix))


def test_a_key_checked_with_another_pepper_is_refused(db: JobDatabase) -> None:
    with db.session() as session:
        teams = TeamService(session, PEPPER)
        plaintext = teams.issue_key(teams.create_team("ml").id, "ci").plaintext
    with db.session() as session, pytest.raises(NotAuthenticated):
        TeamService(session, "another-pepper").authenticate(plaintext)


def test_a_revoked_key_stops_working(db: JobDatabase) -> None:
    with db.session() as session:
        teams = TeamService(session, PEPPER)
        issued = teams.issue_key(teams.create_team("search").id, "ci")
    with db.session() as session:
        TeamService(session, PEPPER).revoke_key(issued.key.id)
    with db.session() as session, pytest.raises(NotAuthenticated, match="revoked"):
        TeamService(session, PEPPER).authenticate(issued.plaintext)


def test_team_names_are_unique(db: JobDatabase) -> None:
    with db.session() as session:
        TeamService(session, PEPPER).create_team("dup")
    with db.session() as session, pytest.raises(Conflict):
        TeamService(session, PEPPER).create_team("dup")
