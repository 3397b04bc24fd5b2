"""Re-publishing of PENDING tasks whose broker message may be lost.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("republish_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "tasks", sa.Column("publish_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.execute("UPDATE tasks SET republish_at = now() WHERE status = 'PENDING'")
    op.create_index(
        "ix_tasks_republish_at",
        "tasks",
        ["republish_at"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_republish_at", table_name="tasks")
    op.drop_column("tasks", "publish_count")
    op.drop_column("tasks", "republish_at")
