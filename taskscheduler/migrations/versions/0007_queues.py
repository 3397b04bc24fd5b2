"""Queues (pause, rate limit, concurrency caps, task defaults) and the task's queue, priority,
concurrency key, dispatch time and trace (the dispatcher, not the api, publishes it now).

Tasks already PENDING or RUNNING were published by the api before this revision: they count as
dispatched. Every tenant that has tasks gets its `default` queue.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

READY = "status = 'PENDING' AND dispatched_at IS NULL"
IN_FLIGHT = "status IN ('PENDING', 'RUNNING') AND dispatched_at IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "queues",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), server_default="RUNNING", nullable=False),
        sa.Column("rate_per_second", sa.Float(), nullable=True),
        sa.Column("rate_burst", sa.Integer(), nullable=True),
        sa.Column("tokens", sa.Float(), server_default="0", nullable=False),
        sa.Column(
            "tokens_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("max_concurrent", sa.Integer(), nullable=True),
        sa.Column("max_concurrent_per_key", sa.Integer(), nullable=True),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("initial_backoff_seconds", sa.Float(), nullable=True),
        sa.Column("max_backoff_seconds", sa.Float(), nullable=True),
        sa.Column("backoff_multiplier", sa.Float(), nullable=True),
        sa.Column("jitter", sa.Boolean(), nullable=True),
        sa.Column("timeout_seconds", sa.Float(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("state IN ('RUNNING', 'PAUSED')", name="ck_queues_state_known"),
        sa.PrimaryKeyConstraint("tenant", "name", name="pk_queues"),
    )
    op.add_column("tasks", sa.Column("queue", sa.Text(), server_default="default", nullable=False))
    op.add_column(
        "tasks", sa.Column("priority", sa.SmallInteger(), server_default="5", nullable=False)
    )
    op.add_column("tasks", sa.Column("concurrency_key", sa.Text(), nullable=True))
    op.add_column("tasks", sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tasks", sa.Column("traceparent", sa.Text(), nullable=True))
    op.create_check_constraint("ck_tasks_priority_in_range", "tasks", "priority BETWEEN 0 AND 9")
    op.execute("UPDATE tasks SET dispatched_at = updated_at WHERE status IN ('PENDING', 'RUNNING')")
    op.execute(
        "INSERT INTO queues (tenant, name) SELECT DISTINCT tenant, 'default' FROM tasks "
        "ON CONFLICT DO NOTHING"
    )
    op.create_index(
        "ix_tasks_tenant_queue_created_at_id",
        "tasks",
        ["tenant", "queue", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_tasks_ready",
        "tasks",
        ["tenant", "queue", sa.text("priority DESC"), "run_at", "created_at"],
        postgresql_where=sa.text(READY),
    )
    op.create_index(
        "ix_tasks_in_flight",
        "tasks",
        ["tenant", "queue", "concurrency_key"],
        postgresql_include=["status"],
        postgresql_where=sa.text(IN_FLIGHT),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_in_flight", table_name="tasks")
    op.drop_index("ix_tasks_ready", table_name="tasks")
    op.drop_index("ix_tasks_tenant_queue_created_at_id", table_name="tasks")
    op.drop_constraint("ck_tasks_priority_in_range", "tasks", type_="check")
    for column in ("traceparent", "dispatched_at", "concurrency_key", "priority", "queue"):
        op.drop_column("tasks", column)
    op.drop_table("queues")
