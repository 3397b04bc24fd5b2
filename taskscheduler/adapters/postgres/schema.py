"""The one schema definition: SQLAlchemy Core tables (Alembic migrations follow it)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from taskscheduler.core.model import TaskStatus

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

STATUS_NAMES = ", ".join(f"'{status.value}'" for status in TaskStatus)
WAITING_FOR_TIMER = ("SCHEDULED", "RETRYING")
FINISHED = ("SUCCESS", "FAILED", "CANCELLED")

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    # Every read and write is scoped to the caller's tenant (the token's `tenant` claim).
    sa.Column("tenant", sa.Text, nullable=False, server_default="default"),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("initial_backoff_seconds", sa.Float, nullable=False),
    sa.Column("max_backoff_seconds", sa.Float, nullable=False),
    sa.Column("backoff_multiplier", sa.Float, nullable=False),
    sa.Column("jitter", sa.Boolean, nullable=False),
    sa.Column("timeout_seconds", sa.Float, nullable=True),
    sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("result", JSONB, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("worker", sa.Text, nullable=True),
    # RUNNING only: the worker renews it by heartbeat; past it, the attempt counts as lost.
    sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
    # PENDING only: when to publish again if no worker has claimed the task by then (its message
    # may be lost: a crash between commit and publish, a broker restarted empty).
    sa.Column("republish_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("publish_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("request_id", sa.Text, nullable=True),
    sa.Column("request_fingerprint", sa.Text, nullable=True),
    # Grows by one with each status change (set by trigger): lets a stream drop events it saw.
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.CheckConstraint(f"status IN ({STATUS_NAMES})", name="status_known"),
    sa.CheckConstraint("attempt >= 0 AND attempt <= max_attempts", name="attempt_in_range"),
    sa.Index(
        "ix_tasks_tenant_created_at_id", "tenant", sa.text("created_at DESC"), sa.text("id DESC")
    ),
    sa.Index(
        "ix_tasks_tenant_status_created_at_id",
        "tenant",
        "status",
        sa.text("created_at DESC"),
        sa.text("id DESC"),
    ),
    sa.Index(
        "ix_tasks_tenant_kind_created_at_id",
        "tenant",
        "kind",
        sa.text("created_at DESC"),
        sa.text("id DESC"),
    ),
    sa.Index(
        "ix_tasks_due",
        "run_at",
        postgresql_where=sa.text("status IN ('SCHEDULED', 'RETRYING')"),
    ),
    sa.Index(
        "ix_tasks_lease_expires_at",
        "lease_expires_at",
        postgresql_where=sa.text("status = 'RUNNING'"),
    ),
    sa.Index(
        "ix_tasks_finished_at",
        "finished_at",
        postgresql_where=sa.text("status IN ('SUCCESS', 'FAILED', 'CANCELLED')"),
    ),
    sa.Index(
        "ix_tasks_republish_at",
        "republish_at",
        postgresql_where=sa.text("status = 'PENDING'"),
    ),
    sa.Index(
        "uq_tasks_tenant_request_id",
        "tenant",
        "request_id",
        unique=True,
        postgresql_where=sa.text("request_id IS NOT NULL"),
    ),
)

task_attempts = sa.Table(
    "task_attempts",
    metadata,
    sa.Column(
        "task_id",
        UUID(as_uuid=True),
        sa.ForeignKey("tasks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("worker", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("error_type", sa.Text, nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("traceback", sa.Text, nullable=True),
    sa.CheckConstraint(f"status IN ({STATUS_NAMES})", name="status_known"),
)

STATUS_CHANNEL = "task_status"
"""The NOTIFY channel of status changes; payload: {"id", "status", "attempt", "version", "time"}."""
