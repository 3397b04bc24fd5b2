"""The check constraints of 0007 and 0008 take the names schema.py gives them: those revisions
passed names already prefixed to a naming convention that prefixes again
(`ck_queues_ck_queues_state_known`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# table, name as migrated, name as schema.py has it
RENAMES = (
    ("queues", "ck_queues_ck_queues_state_known", "ck_queues_state_known"),
    ("schedules", "ck_schedules_ck_schedules_overlap_known", "ck_schedules_overlap_known"),
    ("tasks", "ck_tasks_ck_tasks_priority_in_range", "ck_tasks_priority_in_range"),
)


def upgrade() -> None:
    # A rename touches the catalog only: once granted, the table lock is held for an instant.
    for table, old, new in RENAMES:
        op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {old} TO {new}")


def downgrade() -> None:
    for table, old, new in RENAMES:
        op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {new} TO {old}")
