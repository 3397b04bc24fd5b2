"""ix_tasks_republish_at holds dispatched tasks only: a ready task has no republish time, and
its entry was written at insert and again when it was let through (80 bytes of WAL a task).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NAME = "ix_tasks_republish_at"


def _swap(where: str) -> None:
    # Built beside the old index and swapped (CONCURRENTLY, outside a transaction), as 0009.
    op.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {NAME}_new ON tasks (republish_at) {where}"
    )
    op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
    op.execute(f"ALTER INDEX {NAME}_new RENAME TO {NAME}")


def upgrade() -> None:
    with op.get_context().autocommit_block():
        _swap("WHERE status = 'PENDING' AND dispatched_at IS NOT NULL")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        _swap("WHERE status = 'PENDING'")
