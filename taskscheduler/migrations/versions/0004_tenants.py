"""Tenants: every task belongs to one; listings and idempotency keys are per tenant.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LISTING_ORDER = [sa.text("created_at DESC"), sa.text("id DESC")]


def upgrade() -> None:
    op.add_column("tasks", sa.Column("tenant", sa.Text(), server_default="default", nullable=False))
    op.drop_index("ix_tasks_created_at_id", table_name="tasks")
    op.drop_index("ix_tasks_status_created_at_id", table_name="tasks")
    op.drop_index("ix_tasks_kind_created_at_id", table_name="tasks")
    op.drop_index("uq_tasks_request_id", table_name="tasks")
    op.create_index("ix_tasks_tenant_created_at_id", "tasks", ["tenant", *LISTING_ORDER])
    op.create_index(
        "ix_tasks_tenant_status_created_at_id", "tasks", ["tenant", "status", *LISTING_ORDER]
    )
    op.create_index(
        "ix_tasks_tenant_kind_created_at_id", "tasks", ["tenant", "kind", *LISTING_ORDER]
    )
    op.create_index(
        "uq_tasks_tenant_request_id",
        "tasks",
        ["tenant", "request_id"],
        unique=True,
        postgresql_where=sa.text("request_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_tasks_tenant_request_id", table_name="tasks")
    op.drop_index("ix_tasks_tenant_kind_created_at_id", table_name="tasks")
    op.drop_index("ix_tasks_tenant_status_created_at_id", table_name="tasks")
    op.drop_index("ix_tasks_tenant_created_at_id", table_name="tasks")
    op.create_index(
        "uq_tasks_request_id",
        "tasks",
        ["request_id"],
        unique=True,
        postgresql_where=sa.text("request_id IS NOT NULL"),
    )
    op.create_index("ix_tasks_kind_created_at_id", "tasks", ["kind", *LISTING_ORDER])
    op.create_index("ix_tasks_status_created_at_id", "tasks", ["status", *LISTING_ORDER])
    op.create_index("ix_tasks_created_at_id", "tasks", LISTING_ORDER)
    op.drop_column("tasks", "tenant")
