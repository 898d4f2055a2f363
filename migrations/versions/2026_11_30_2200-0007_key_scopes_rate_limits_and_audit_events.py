"""key scopes and per-key rate limits (replacing is_admin), and the audit_events table

Existing keys: an admin key gets the `admin` scope, every other key `write` (what a team key could
do before scopes: read and change its own team's objects).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=10), nullable=False, server_default="write"))
        batch_op.add_column(sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True))
    op.execute(sa.text("UPDATE api_keys SET scope = CASE WHEN is_admin THEN 'admin' ELSE 'write' END"))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("scope", server_default=None)
        batch_op.drop_column("is_admin")

    op.create_table(
        "audit_events",
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("key_id", sa.Uuid(), nullable=True),
        sa.Column("key_prefix", sa.String(length=16), nullable=True),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("target_type", sa.String(length=30), nullable=False),
        sa.Column("target_id", sa.String(length=200), nullable=True),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.Column("details", JSONType, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_action"), ["action"], unique=False)
        batch_op.create_index("ix_audit_events_created", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_audit_events_team_created", ["team_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_team_created")
        batch_op.drop_index("ix_audit_events_created")
        batch_op.drop_index(batch_op.f("ix_audit_events_action"))
    op.drop_table("audit_events")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(sa.text("UPDATE api_keys SET is_admin = (scope = 'admin')"))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("is_admin", server_default=None)
        batch_op.drop_column("rate_limit_per_minute")
        batch_op.drop_column("scope")
