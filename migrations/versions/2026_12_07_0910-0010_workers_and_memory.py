"""workers advertise their memory and devices; a stage's memory figures

A `workers` table that each worker keeps fresh (queues, memory total and available, the cgroup limit
when one is set, CUDA devices, concurrency, `seen_at`), read by submit to refuse a job that fits no
worker; on `jobs`, the peak memory a stage process was seen to use and the running stage's memory
watch (its limit, estimate and the cgroup's OOM-kill count at start); on `base_models`, the shape
numbers and parameter count submit estimates memory from; on `jobs`, the request that submitted
the job, which the dispatcher sends along with its first task. Nothing to carry over: rows registered
before keep `shape` empty and are checked by the train stage only.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 09:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("queues", JSONType, nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("memory_total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("memory_available_bytes", sa.BigInteger(), nullable=False),
        sa.Column("memory_limited_by", sa.String(length=20), nullable=False),
        sa.Column("devices", JSONType, nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
        sa.UniqueConstraint("name", name=op.f("uq_workers_name")),
    )
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workers_seen_at"), ["seen_at"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("memory_watch", JSONType, nullable=True))
        batch_op.add_column(sa.Column("request_id", sa.String(length=100), nullable=True))

    with op.batch_alter_table("base_models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shape", JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("base_models", schema=None) as batch_op:
        batch_op.drop_column("shape")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("request_id")
        batch_op.drop_column("memory_watch")
        batch_op.drop_column("peak_memory_bytes")
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workers_seen_at"))
    op.drop_table("workers")
