"""Webhook signing secrets are encrypted at rest under keys from the settings; the keys rotate (old rows
still decrypt, and move to the newest key by command or on their next delivery); migration 0009
encrypts the secrets that were stored in the clear, and its downgrade decrypts them back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from pydantic import SecretStr

from shared.db.base import JSONType
from shared.db.migrate import alembic_config
from shared.db.models import WebhookEndpoint
from shared.db.session import create_db_engine
from shared.webhooks.delivery import DeliveryPolicy, WebhookSender, deliver
from shared.webhooks.secret_box import SecretBox, SecretUnreadable
from shared.webhooks.service import WebhookService
from temper_client import verify_signature
from tests.support.job_rows import JobDatabase, job_database
from tests.support.webhook_receiver import webhook_receiver

OLD = "the-first-key-encryption-key-0123456789"
NEW = "the-second-key-encryption-key-9876543210"


@pytest.fixture
def db(tmp_path: Path, tiny_base_model: Path) -> JobDatabase:
    return job_database(tmp_path, tiny_base_model)


def _stored(db: JobDatabase, endpoint_id: uuid.UUID) -> str:
    with db.session() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        return endpoint.secret_encrypted


def test_the_database_holds_no_secret_and_old_rows_decrypt_after_the_key_is_rotated(db: JobDatabase) -> None:
    with db.session() as session:
        created = WebhookService(session, SecretBox([OLD])).create(db.team_id, "http://127.0.0.1:9/h")
    stored = _stored(db, created.endpoint.id)
    assert created.secret.startswith("whsec_") and created.secret not in stored
    assert stored.startswith(f"fernet:{SecretBox([OLD]).current_key_id}:")

    rotated = SecretBox([NEW, OLD])  # a new key first, the old one kept after it
    assert rotated.decrypt(stored) == created.secret and not rotated.is_current(stored)
    with db.session() as session:
        assert WebhookService(session, rotated).reencrypt_secrets() == (1, 1)
    moved = _stored(db, created.endpoint.id)
    assert moved.startswith(f"fernet:{rotated.current_key_id}:")
    # Now the old key can go: the newest alone opens every row.
    assert SecretBox([NEW]).decrypt(moved) == created.secret
    with db.session() as session:
        assert WebhookService(session, rotated).reencrypt_secrets() == (0, 1)
    # Without the key a row names, it says which key id is missing.
    with pytest.raises(SecretUnreadable, match=SecretBox([NEW]).current_key_id):
        SecretBox([OLD]).decrypt(moved)
    # A row altered in the database does not decrypt (Fernet authenticates).
    with pytest.raises(SecretUnreadable):
        SecretBox([NEW]).decrypt(moved[:-6] + "AAAAAA")


def test_a_delivery_signs_with_the_decrypted_secret_and_moves_the_row_to_the_newest_key(
    db: JobDatabase,
) -> None:
    with webhook_receiver([200]) as receiver:
        with db.session() as session:
            created = WebhookService(session, SecretBox([OLD])).create(db.team_id, receiver.url)
        with db.session() as session:
            delivery_id = WebhookService(session).send_test(db.team_id, created.endpoint.id).id
        db.effects.effects.clear()
        sender = WebhookSender(timeout_s=2.0)
        try:
            assert deliver(
                db.session_factory, sender, delivery_id, DeliveryPolicy(), SecretBox([NEW, OLD])
            ) == ("succeeded")
        finally:
            sender.close()
        request = receiver.requests[0]
    verify_signature(created.secret, request.headers["Temper-Signature"], request.body)
    assert _stored(db, created.endpoint.id).startswith(f"fernet:{SecretBox([NEW]).current_key_id}:")


def test_a_secret_no_key_opens_fails_the_attempt_and_says_why(db: JobDatabase) -> None:
    with db.session() as session:
        created = WebhookService(session, SecretBox([OLD])).create(db.team_id, "http://127.0.0.1:9/h")
    with db.session() as session:
        delivery_id = WebhookService(session).send_test(db.team_id, created.endpoint.id).id
    sender = WebhookSender(timeout_s=1.0)
    try:
        assert deliver(db.session_factory, sender, delivery_id, DeliveryPolicy(), SecretBox([NEW])) is None
    finally:
        sender.close()
    with db.session() as session:
        (attempt,) = WebhookService(session).deliveries(db.team_id, created.endpoint.id, None, 10)[0]
    assert attempt.status == "failed" and "no longer holds" in (attempt.error or "")


def _through_0009(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPER_WEBHOOK_SECRET_KEYS", f'["{NEW}", "{OLD}"]')
    config = alembic_config(url)
    command.upgrade(config, "0008")
    engine = create_db_engine(url)
    teams = sa.table("teams", sa.column("id", sa.Uuid()), sa.column("name", sa.String()))
    endpoints = sa.table(
        "webhook_endpoints",
        sa.column("id", sa.Uuid()),
        sa.column("team_id", sa.Uuid()),
        sa.column("url", sa.String()),
        sa.column("secret", sa.String()),
        sa.column("events", JSONType),
        sa.column("active", sa.Boolean()),
    )
    team_id, endpoint_id = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(teams.insert().values(id=team_id, name="ops"))
        connection.execute(
            endpoints.insert().values(
                id=endpoint_id,
                team_id=team_id,
                url="http://127.0.0.1:9/h",
                secret="whsec_stored-in-the-clear",
                events=["job.failed"],
                active=True,
            )
        )
    command.upgrade(config, "0009")
    with engine.connect() as connection:
        columns = {column["name"] for column in sa.inspect(connection).get_columns("webhook_endpoints")}
        stored = connection.execute(sa.text("SELECT secret_encrypted FROM webhook_endpoints")).scalar_one()
    assert "secret" not in columns and "whsec_stored-in-the-clear" not in stored
    assert stored.startswith(f"fernet:{SecretBox([NEW]).current_key_id}:")  # the newest key
    assert SecretBox([NEW]).decrypt(stored) == "whsec_stored-in-the-clear"

    command.downgrade(config, "0008")
    with engine.connect() as connection:
        back = connection.execute(sa.text("SELECT secret FROM webhook_endpoints")).scalar_one()
    assert back == "whsec_stored-in-the-clear"
    engine.dispose()


def test_migration_0009_encrypts_plaintext_secrets_and_its_downgrade_decrypts_them_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _through_0009(f"sqlite:///{tmp_path / 'w.db'}", monkeypatch)


@pytest.mark.services
def test_migration_0009_encrypts_plaintext_secrets_and_its_downgrade_decrypts_them_on_postgres(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _through_0009(postgres_url, monkeypatch)


def test_the_reencrypt_command_moves_every_row_to_the_newest_key(db: JobDatabase) -> None:
    from services.cli.webhook_keys import reencrypt_webhook_secrets

    with db.session() as session:
        ids = [
            WebhookService(session, SecretBox([OLD]))
            .create(db.team_id, f"http://127.0.0.1:9/{n}")
            .endpoint.id
            for n in range(3)
        ]
    settings = db.context.settings.model_copy(
        update={"webhook_secret_keys": [SecretStr(NEW), SecretStr(OLD)]}
    )
    assert reencrypt_webhook_secrets(settings) == (3, 3)
    assert all(SecretBox([NEW]).is_current(_stored(db, endpoint_id)) for endpoint_id in ids)


def test_outside_local_use_the_placeholder_or_a_short_key_is_refused() -> None:
    from pydantic import ValidationError

    from shared.settings import Settings

    production = {"environment": "production", "api_key_pepper": "a-real-pepper", "_env_file": None}
    for keys in (None, ["change-me"], ["too-short"], [NEW, "change-me"]):
        with pytest.raises(ValidationError, match="TEMPER_WEBHOOK_SECRET_KEYS"):
            Settings(**production, **({} if keys is None else {"webhook_secret_keys": keys}))  # type: ignore[arg-type]
    assert len(Settings(**production, webhook_secret_keys=[NEW, OLD]).webhook_secret_keys) == 2  # type: ignore[arg-type]
    assert Settings(environment="local", _env_file=None).webhook_secret_keys  # type: ignore[call-arg]
