"""One task per fire of a schedule, indexed for the tasks schedules make only: an index entry of
every other task's row (a NULL schedule) was written on each of its four row versions, 13% of
the index entries a task costs, for no lookup.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("uq_tasks_schedule_id_fire_time", table_name="tasks")
    op.create_index(
        "uq_tasks_schedule_id_fire_time",
        "tasks",
        ["schedule_id", "fire_time"],
        unique=True,
        postgresql_where=sa.text("schedule_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_tasks_schedule_id_fire_time", table_name="tasks")
    op.create_index(
        "uq_tasks_schedule_id_fire_time", "tasks", ["schedule_id", "fire_time"], unique=True
    )
