"""The database URL from parts, for passwords that a pasted-together URL and alembic's config parser
break; and a production install refuses to start without the password."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from shared.db.migrate import alembic_config
from shared.settings import Settings

PASSWORD = "p%40ss%@:/w0rd?#"


def test_url_from_parts_carries_any_password_and_user() -> None:
    settings = Settings(
        database_host="db.internal",
        database_port=6543,
        database_user="team@ml",
        database_password=PASSWORD,
        database_name="temper",
        _env_file=None,
    )

    url = make_url(settings.resolved_database_url)

    assert (url.drivername, url.host, url.port, url.database) == ("postgresql", "db.internal", 6543, "temper")
    assert url.username == "team@ml" and url.password == PASSWORD


def test_a_full_url_still_wins_and_nothing_set_is_the_embedded_sqlite() -> None:
    explicit = Settings(database_url="postgresql://a:b@h/d", database_host="ignored", _env_file=None)
    assert explicit.resolved_database_url == "postgresql://a:b@h/d"
    assert Settings(_env_file=None).resolved_database_url.startswith("sqlite:///")


def test_alembic_reads_back_the_url_it_was_given() -> None:
    url = Settings(database_host="h", database_password=PASSWORD, _env_file=None).resolved_database_url

    assert alembic_config(url).get_main_option("sqlalchemy.url") == url


def test_production_refuses_a_database_without_password() -> None:
    with pytest.raises(ValidationError, match="TEMPER_DATABASE_PASSWORD"):
        Settings(
            environment="production",
            api_key_pepper="a-real-pepper",
            database_host="postgres",
            _env_file=None,
        )
