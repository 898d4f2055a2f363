"""Running Alembic migrations from code: `temper db upgrade`, the compose `migrate` service, tests.

Alembic keeps its options in a ConfigParser, which reads `%` as the start of an interpolation: a
URL-encoded password (`p%40ss` for `p@ss`) must reach it as `%%`, or the upgrade fails before it
connects. Every caller goes through `alembic_config` so that the escaping happens in one place.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = REPO_ROOT / "alembic.ini"


def alembic_config(database_url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    # The caller's logging stays as it is (migrations/env.py reads this).
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)
