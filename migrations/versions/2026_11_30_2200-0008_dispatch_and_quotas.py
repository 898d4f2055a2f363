"""dispatch and quotas: admission of queued jobs, GPU-hour quotas, indexes for the hot reads

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dispatch_state = op.create_table(
        "dispatch_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("paused_reason", sa.String(length=500), nullable=True),
        sa.Column("last_pass_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_state")),
    )
    op.execute(dispatch_state.insert().values(id=1, paused=False, last_pass_at=sa.func.now()))

    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_events_job_id"))
        batch_op.create_index("ix_job_events_job_id_id", ["job_id", "id"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("worker_seconds", sa.Float(), nullable=True))
        batch_op.drop_index(batch_op.f("ix_jobs_status"))
        batch_op.drop_index(batch_op.f("ix_jobs_team_id"))
        batch_op.create_index("ix_jobs_status_created", ["status", "created_at"], unique=False)
        batch_op.create_index("ix_jobs_team_created", ["team_id", "created_at", "id"], unique=False)
        batch_op.create_index("ix_jobs_team_finished", ["team_id", "finished_at"], unique=False)

    # Jobs submitted before this revision had their first task sent at submit: they hold a slot.
    op.execute(
        "UPDATE jobs SET admitted_at = COALESCE(started_at, created_at) "
        "WHERE status NOT IN ('succeeded', 'failed', 'cancelled')"
    )

    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gpu_hours_per_period", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("last_admitted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_column("last_admitted_at")
        batch_op.drop_column("gpu_hours_per_period")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_team_finished")
        batch_op.drop_index("ix_jobs_team_created")
        batch_op.drop_index("ix_jobs_status_created")
        batch_op.create_index(batch_op.f("ix_jobs_team_id"), ["team_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_status"), ["status"], unique=False)
        batch_op.drop_column("worker_seconds")
        batch_op.drop_column("admitted_at")

    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.drop_index("ix_job_events_job_id_id")
        batch_op.create_index(batch_op.f("ix_job_events_job_id"), ["job_id"], unique=False)

    op.drop_table("dispatch_state")
