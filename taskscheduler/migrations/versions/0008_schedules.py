"""Cron schedules, and the schedule and fire time of the tasks they make (unique together:
one task per fire, however many dispatchers fire it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("cron", sa.Text(), nullable=False),
        sa.Column("time_zone", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("payload", JSONB(), nullable=False),
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=True),
        sa.Column("concurrency_key", sa.Text(), nullable=True),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("initial_backoff_seconds", sa.Float(), nullable=True),
        sa.Column("max_backoff_seconds", sa.Float(), nullable=True),
        sa.Column("backoff_multiplier", sa.Float(), nullable=True),
        sa.Column("jitter", sa.Boolean(), nullable=True),
        sa.Column("timeout_seconds", sa.Float(), nullable=True),
        sa.Column("overlap", sa.Text(), nullable=False),
        sa.Column("catchup_window_seconds", sa.Float(), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("buffered_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_task_id", UUID(as_uuid=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "overlap IN ('SKIP', 'ALLOW', 'BUFFER_ONE')", name="ck_schedules_overlap_known"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
    )
    op.create_index(
        "ix_schedules_tenant_created_at_id", "schedules", ["tenant", "created_at", "id"]
    )
    op.create_index(
        "ix_schedules_next_fire_at",
        "schedules",
        ["next_fire_at"],
        postgresql_where=sa.text("NOT paused"),
    )
    op.create_index(
        "ix_schedules_buffered_fire_at",
        "schedules",
        ["buffered_fire_at"],
        postgresql_where=sa.text("buffered_fire_at IS NOT NULL"),
    )
    op.add_column("tasks", sa.Column("schedule_id", UUID(as_uuid=True), nullable=True))
    op.add_column("tasks", sa.Column("fire_time", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "uq_tasks_schedule_id_fire_time", "tasks", ["schedule_id", "fire_time"], unique=True
    )
    op.create_index(
        "ix_tasks_schedule_live",
        "tasks",
        ["schedule_id"],
        postgresql_where=sa.text(
            "schedule_id IS NOT NULL AND status IN ('SCHEDULED', 'PENDING', 'RUNNING', 'RETRYING')"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_schedule_live", table_name="tasks")
    op.drop_index("uq_tasks_schedule_id_fire_time", table_name="tasks")
    op.drop_column("tasks", "fire_time")
    op.drop_column("tasks", "schedule_id")
    op.drop_table("schedules")
