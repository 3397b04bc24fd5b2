"""Leases of RUNNING attempts, renewed by the worker's heartbeat.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_tasks_lease_expires_at",
        "tasks",
        ["lease_expires_at"],
        postgresql_where=sa.text("status = 'RUNNING'"),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_lease_expires_at", table_name="tasks")
    op.drop_column("tasks", "lease_expires_at")
