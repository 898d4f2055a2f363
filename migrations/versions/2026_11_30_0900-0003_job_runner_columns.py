"""job runner columns: running stage, completed stages, heartbeat, study

The stage runner's bookkeeping moves out of the `result` document into columns of its own
(`running_stage`, `completed_stages`, `heartbeat_at`; `task_id` existed and is now written), and a
job names the study it runs a variant of (`study_id`). Existing rows are carried over: the two keys
leave `result`, and `study_id` is read from `study_variants`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
RUNNER_KEYS = ("running_stage", "completed_stages")

jobs = sa.table(
    "jobs",
    sa.column("id", sa.Uuid()),
    sa.column("result", JSONType),
    sa.column("running_stage", sa.String()),
    sa.column("completed_stages", JSONType),
    sa.column("study_id", sa.Uuid()),
)
study_variants = sa.table("study_variants", sa.column("study_id", sa.Uuid()), sa.column("job_id", sa.Uuid()))


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("study_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("running_stage", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("completed_stages", JSONType, nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_study_id"), ["study_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_study_id_studies"), "studies", ["study_id"], ["id"], ondelete="SET NULL"
        )

    connection = op.get_bind()
    studies_of_jobs = dict(
        connection.execute(
            sa.select(study_variants.c.job_id, study_variants.c.study_id).where(
                study_variants.c.job_id.is_not(None)
            )
        ).all()
    )
    for job_id, result in connection.execute(sa.select(jobs.c.id, jobs.c.result)).all():
        result = dict(result or {})
        connection.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(
                running_stage=result.get("running_stage"),
                completed_stages=list(result.get("completed_stages") or []),
                study_id=studies_of_jobs.get(job_id),
                result={key: value for key, value in result.items() if key not in RUNNER_KEYS},
            )
        )

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("completed_stages", existing_type=JSONType, nullable=False)


def downgrade() -> None:
    connection = op.get_bind()
    for job_id, result, running_stage, completed_stages in connection.execute(
        sa.select(jobs.c.id, jobs.c.result, jobs.c.running_stage, jobs.c.completed_stages)
    ).all():
        restored = {
            **(result or {}),
            "running_stage": running_stage,
            "completed_stages": completed_stages or [],
        }
        connection.execute(jobs.update().where(jobs.c.id == job_id).values(result=restored))

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_jobs_study_id_studies"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_jobs_study_id"))
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("completed_stages")
        batch_op.drop_column("running_stage")
        batch_op.drop_column("study_id")
