"""`temper db reencrypt-webhook-secrets`: after a key rotation, move every stored webhook signing
secret under the newest key of TEMPER_WEBHOOK_SECRET_KEYS (runs against the database directly, like
`temper db upgrade`; the API has no route for it, since it needs the keys, not an API key)."""

from __future__ import annotations

from shared.settings import Settings, get_settings


def reencrypt_webhook_secrets(settings: Settings | None = None) -> tuple[int, int]:
    """Returns (re-encrypted, endpoints in all)."""
    from shared.db.session import create_db_engine, create_session_factory, session_scope
    from shared.webhooks.secret_box import SecretBox
    from shared.webhooks.service import WebhookService

    settings = settings or get_settings()
    engine = create_db_engine(settings.resolved_database_url)
    try:
        with session_scope(create_session_factory(engine)) as session:
            return WebhookService(session, SecretBox.from_settings(settings)).reencrypt_secrets()
    finally:
        engine.dispose()
