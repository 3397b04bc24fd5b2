"""One task per fire of a schedule, indexed for the tasks schedules make only: an index entry of
every other task's row (a NULL schedule) was written on each of its four row versions, 13% of
the index entries a task costs, for no lookup.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Built beside the old index and swapped (CONCURRENTLY, outside a transaction): a plain
    # DROP and CREATE would hold every reader and writer of `tasks` for the whole build.
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_tasks_schedule_id_fire_time_new "
            "ON tasks (schedule_id, fire_time) WHERE schedule_id IS NOT NULL"
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS uq_tasks_schedule_id_fire_time")
        op.execute(
            "ALTER INDEX uq_tasks_schedule_id_fire_time_new "
            "RENAME TO uq_tasks_schedule_id_fire_time"
        )


def downgrade() -> None:
    op.drop_index("uq_tasks_schedule_id_fire_time", table_name="tasks")
    op.create_index(
        "uq_tasks_schedule_id_fire_time", "tasks", ["schedule_id", "fire_time"], unique=True
    )
