"""An index for the retention job: finished tasks by their finish time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_tasks_finished_at",
        "tasks",
        ["finished_at"],
        postgresql_where=sa.text("status IN ('SUCCESS', 'FAILED', 'CANCELLED')"),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_finished_at", table_name="tasks")
