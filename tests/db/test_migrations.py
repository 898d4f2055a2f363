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
