"""keys' last use and webhook signing secrets encrypted at rest

`api_keys.last_used_at` already exists (0001); from this revision on the API writes it (at most once
a minute a key), which needs no schema change.

Webhook signing secrets move from `webhook_endpoints.secret` (plaintext) to `secret_encrypted`
(shared/webhooks/secret_box.py). Existing secrets are encrypted here, during the upgrade, with the
newest key of TEMPER_WEBHOOK_SECRET_KEYS (the migration must run with the same settings as the
services), rather than marked and encrypted on first use: the point is that the database alone no
longer holds what forges Temper's signatures, and lazily, an endpoint that never fires again would
keep its plaintext forever. The downgrade decrypts them back into `secret`, so it needs the keys too.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.settings import Settings
from shared.webhooks.secret_box import SecretBox

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

endpoints = sa.table(
    "webhook_endpoints",
    sa.column("id", sa.Uuid()),
    sa.column("secret", sa.String()),
    sa.column("secret_encrypted", sa.String()),
)


def _box() -> SecretBox:
    # Read afresh (not the cached get_settings()): the keys as the environment holds them now.
    return SecretBox.from_settings(Settings())


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret_encrypted", sa.String(length=500), nullable=True))

    connection = op.get_bind()
    rows = connection.execute(sa.select(endpoints.c.id, endpoints.c.secret)).all()
    if rows:
        box = _box()
        for endpoint_id, secret in rows:
            connection.execute(
                endpoints.update()
                .where(endpoints.c.id == endpoint_id)
                .values(secret_encrypted=box.encrypt(secret))
            )

    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.alter_column("secret_encrypted", existing_type=sa.String(length=500), nullable=False)
        batch_op.drop_column("secret")


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret", sa.String(length=100), nullable=True))

    connection = op.get_bind()
    rows = connection.execute(sa.select(endpoints.c.id, endpoints.c.secret_encrypted)).all()
    if rows:
        box = _box()
        for endpoint_id, stored in rows:
            connection.execute(
                endpoints.update().where(endpoints.c.id == endpoint_id).values(secret=box.decrypt(stored))
            )

    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=100), nullable=False)
        batch_op.drop_column("secret_encrypted")
