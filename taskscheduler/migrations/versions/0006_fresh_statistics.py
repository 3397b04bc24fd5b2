"""Fresh planner statistics on `tasks` however long its history: analyze after every 10,000
changed rows, not after 10% of the table.

With a million finished tasks, PostgreSQL's default waits for 100,000 changes before it
analyzes again. Until then a burst of PENDING tasks looks rare to the planner, which then
serves the worker's claim (`WHERE id = ? AND status = 'PENDING'`) from the partial index of
PENDING tasks, reading the whole backlog on every claim (25 ms at 100,000 waiting tasks,
against 0.2 ms by primary key once analyzed). Vacuum likewise runs after 2% of the table has
changed rather than 20%: every task is updated several times in its life.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE tasks SET (autovacuum_analyze_scale_factor = 0, "
        "autovacuum_analyze_threshold = 10000, autovacuum_vacuum_scale_factor = 0.02)"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE tasks RESET (autovacuum_analyze_scale_factor, "
        "autovacuum_analyze_threshold, autovacuum_vacuum_scale_factor)"
    )
