"""`alembic upgrade head`, then the models and the migrations must agree, on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import shared.db.models  # noqa: F401
from shared.db.base import Base
from shared.db.session import create_db_engine
from tests.support.stack import REPO_ROOT


def _config(url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["configure_logger"] = False
    return config


def _assert_models_match(url: str) -> None:
    config = _config(url)
    command.upgrade(config, "head")
    engine = create_db_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": connection.dialect.name == "sqlite"}
        )
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == [], f"models and migrations disagree: {differences}"
    command.check(config)  # the same check `alembic check` runs
    command.downgrade(config, "base")
    engine = create_db_engine(url)
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_single_head() -> None:
    assert len(ScriptDirectory.from_config(_config("sqlite://")).get_heads()) == 1


def test_migrations_match_models_on_sqlite(tmp_path: Path) -> None:
    _assert_models_match(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.services
def test_migrations_match_models_on_postgres(postgres_url: str) -> None:
    _assert_models_match(postgres_url)


def _keys_through_0007(url: str) -> None:
    """Keys made before scopes keep what they could do: an admin key gets `admin`, others `write`;
    and back again on a downgrade."""
    config = _config(url)
    command.upgrade(config, "0006")
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO teams (id, name) VALUES (:id, 'ops')"),
            {"id": "11111111111111111111111111111111"},
        )
        for key_id, prefix, is_admin in (("a" * 32, "adminkey", True), ("b" * 32, "teamkey", False)):
            connection.execute(
                sa.text(
                    "INSERT INTO api_keys (id, team_id, name, prefix, key_hash, is_admin) "
                    "VALUES (:id, :team, 'k', :prefix, 'h', :is_admin)"
                ),
                {
                    "id": key_id,
                    "team": "11111111111111111111111111111111",
                    "prefix": prefix,
                    "is_admin": is_admin,
                },
            )
    command.upgrade(config, "0007")
    with engine.connect() as connection:
        scopes = dict(connection.execute(sa.text("SELECT prefix, scope FROM api_keys")).all())
    assert scopes == {"adminkey": "admin", "teamkey": "write"}
    command.downgrade(config, "0006")
    with engine.connect() as connection:
        admins = dict(connection.execute(sa.text("SELECT prefix, is_admin FROM api_keys")).all())
    assert {prefix: bool(value) for prefix, value in admins.items()} == {"adminkey": True, "teamkey": False}
    engine.dispose()


def test_key_scopes_migrate_from_is_admin_on_sqlite(tmp_path: Path) -> None:
    _keys_through_0007(f"sqlite:///{tmp_path / 'k.db'}")


@pytest.mark.services
def test_key_scopes_migrate_from_is_admin_on_postgres(postgres_url: str) -> None:
    _keys_through_0007(postgres_url)
