"""The listing indexes hold settled tasks only: a task with the broker or running (in flight)
has no entry in them, so that letting it through, claiming it and most of its moves write no
entry into the four of them (44% of the WAL a task cost); listings read the in-flight tasks
from ix_tasks_in_flight beside them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SETTLED = "NOT (status IN ('PENDING', 'RUNNING') AND dispatched_at IS NOT NULL)"
LISTING = {
    "ix_tasks_tenant_created_at_id": "tenant, created_at DESC, id DESC",
    "ix_tasks_tenant_status_created_at_id": "tenant, status, created_at DESC, id DESC",
    "ix_tasks_tenant_kind_created_at_id": "tenant, kind, created_at DESC, id DESC",
    "ix_tasks_tenant_queue_created_at_id": "tenant, queue, created_at DESC, id DESC",
}


def _swap(name: str, columns: str, where: str) -> None:
    # Built beside the old index and swapped (CONCURRENTLY, outside a transaction), as 0009.
    op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name}_new ON tasks ({columns}){where}")
    op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, columns in LISTING.items():
            _swap(name, columns, f" WHERE {SETTLED}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, columns in LISTING.items():
            _swap(name, columns, "")
