"""Dependencies between tasks and workflows: the BLOCKED status, the edges of the dependency
graph, the workflows table, and the trigger that releases or cancels a task's dependents in the
transaction of its end.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

STATUSES = "'SCHEDULED', 'PENDING', 'RUNNING', 'RETRYING', 'SUCCESS', 'FAILED', 'CANCELLED'"

NOTIFY_STATUS = """
CREATE OR REPLACE FUNCTION tasks_notify_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('task_status', json_build_object(
        'id', NEW.id, 'status', NEW.status, 'attempt', NEW.attempt,
        'version', NEW.version, 'time', NEW.updated_at, 'run_at', NEW.run_at,
        'workflow_id', NEW.workflow_id)::text);
    RETURN NULL;
END $$
"""

NOTIFY_STATUS_BEFORE = """
CREATE OR REPLACE FUNCTION tasks_notify_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('task_status', json_build_object(
        'id', NEW.id, 'status', NEW.status, 'attempt', NEW.attempt,
        'version', NEW.version, 'time', NEW.updated_at, 'run_at', NEW.run_at)::text);
    RETURN NULL;
END $$
"""

SETTLE_DEPENDENTS = """
CREATE FUNCTION tasks_settle_dependents() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    policy text;
BEGIN
    IF NEW.workflow_id IS NOT NULL THEN
        UPDATE workflows SET
            unfinished = unfinished - 1,
            failed = failed + (NEW.status = 'FAILED')::int,
            cancelled = cancelled + (NEW.status = 'CANCELLED')::int,
            status = CASE
                WHEN unfinished > 1 THEN status
                WHEN failed > 0 OR NEW.status = 'FAILED' THEN 'FAILED'
                WHEN cancelled > 0 OR NEW.status = 'CANCELLED' THEN 'CANCELLED'
                ELSE 'SUCCESS' END,
            finished_at = CASE WHEN unfinished > 1 THEN NULL ELSE now() END,
            cancel_requested_at = CASE
                WHEN NEW.status <> 'SUCCESS' AND on_failure = 'CANCEL_WORKFLOW'
                THEN coalesce(cancel_requested_at, now())
                ELSE cancel_requested_at END,
            updated_at = now()
        WHERE id = NEW.workflow_id
        RETURNING on_failure INTO policy;
        IF NEW.status <> 'SUCCESS' AND policy = 'CANCEL_WORKFLOW' THEN
            PERFORM pg_notify('dispatch_wake', NEW.workflow_id::text);
        END IF;
    END IF;
    IF NEW.status = 'SUCCESS' THEN
        IF NEW.has_dependents THEN
            UPDATE tasks AS t SET
                blocked_on = t.blocked_on - 1,
                status = CASE
                    WHEN t.blocked_on > 1 THEN 'BLOCKED'
                    WHEN t.run_at > now() THEN 'SCHEDULED'
                    ELSE 'PENDING' END,
                updated_at = now()
            FROM task_dependencies AS d
            WHERE d.depends_on = NEW.id AND t.id = d.task_id AND t.status = 'BLOCKED';
        END IF;
        RETURN NULL;
    END IF;
    IF NEW.has_dependents THEN
        WITH RECURSIVE below(id) AS (
            SELECT d.task_id FROM task_dependencies AS d JOIN tasks AS t ON t.id = d.task_id
            WHERE d.depends_on = NEW.id AND t.status = 'BLOCKED'
            UNION
            SELECT d.task_id FROM below AS b
            JOIN task_dependencies AS d ON d.depends_on = b.id
            JOIN tasks AS t ON t.id = d.task_id
            WHERE t.status = 'BLOCKED'
        )
        UPDATE tasks SET
            status = 'CANCELLED',
            finished_at = now(),
            error = format('taskscheduler.DependencyFailed: dependency %s ended %s',
                NEW.id, NEW.status),
            updated_at = now()
        WHERE id IN (SELECT id FROM below) AND status = 'BLOCKED';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_settle_dependents AFTER UPDATE OF status ON tasks
FOR EACH ROW WHEN (
    OLD.status NOT IN ('SUCCESS', 'FAILED', 'CANCELLED')
    AND NEW.status IN ('SUCCESS', 'FAILED', 'CANCELLED')
    AND (NEW.has_dependents OR NEW.workflow_id IS NOT NULL)
)
EXECUTE FUNCTION tasks_settle_dependents();
"""


def _status_check(statuses: str) -> None:
    for table in ("tasks", "task_attempts"):
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT ck_{table}_status_known, "
            f"ADD CONSTRAINT ck_{table}_status_known CHECK (status IN ({statuses}))"
        )


def upgrade() -> None:
    _status_check(f"'BLOCKED', {STATUSES}")
    op.add_column("tasks", sa.Column("workflow_id", UUID(as_uuid=True), nullable=True))
    op.add_column("tasks", sa.Column("step_name", sa.Text(), nullable=True))
    op.add_column("tasks", sa.Column("blocked_on", sa.Integer(), nullable=True))
    op.add_column(
        "tasks",
        sa.Column("has_dependents", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index(
        "ix_tasks_workflow_id_created_at_id",
        "tasks",
        ["workflow_id", sa.text("created_at DESC"), sa.text("id DESC")],
        postgresql_where=sa.text("workflow_id IS NOT NULL"),
    )
    op.create_table(
        "task_dependencies",
        sa.Column("task_id", UUID(as_uuid=True), nullable=False),
        sa.Column("depends_on", UUID(as_uuid=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name="fk_task_dependencies_task_id_tasks",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["depends_on"],
            ["tasks.id"],
            name="fk_task_dependencies_depends_on_tasks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "depends_on", name="pk_task_dependencies"),
    )
    op.create_index("ix_task_dependencies_depends_on", "task_dependencies", ["depends_on"])
    op.create_table(
        "workflows",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.Text(), server_default="RUNNING", nullable=False),
        sa.Column("on_failure", sa.Text(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("unfinished", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cancelled", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("request_fingerprint", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('RUNNING', 'SUCCESS', 'FAILED', 'CANCELLED')",
            name="status_known",
        ),
        sa.CheckConstraint(
            "on_failure IN ('CANCEL_WORKFLOW', 'CONTINUE')", name="on_failure_known"
        ),
        sa.CheckConstraint("unfinished >= 0 AND unfinished <= steps", name="unfinished_in_range"),
        sa.PrimaryKeyConstraint("id", name="pk_workflows"),
    )
    op.create_index(
        "ix_workflows_tenant_created_at_id",
        "workflows",
        ["tenant", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "uq_workflows_tenant_request_id",
        "workflows",
        ["tenant", "request_id"],
        unique=True,
        postgresql_where=sa.text("request_id IS NOT NULL"),
    )
    op.create_index(
        "ix_workflows_stopping",
        "workflows",
        ["cancel_requested_at"],
        postgresql_where=sa.text("cancel_requested_at IS NOT NULL AND status = 'RUNNING'"),
    )
    op.create_index(
        "ix_workflows_finished_at",
        "workflows",
        ["finished_at"],
        postgresql_where=sa.text("finished_at IS NOT NULL"),
    )
    op.execute(NOTIFY_STATUS)
    op.execute(SETTLE_DEPENDENTS)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS tasks_settle_dependents ON tasks")
    op.execute("DROP FUNCTION IF EXISTS tasks_settle_dependents()")
    op.execute(NOTIFY_STATUS_BEFORE)
    op.drop_table("workflows")
    op.drop_table("task_dependencies")
    op.drop_index("ix_tasks_workflow_id_created_at_id", table_name="tasks")
    for column in ("has_dependents", "blocked_on", "step_name", "workflow_id"):
        op.drop_column("tasks", column)
    _status_check(STATUSES)
