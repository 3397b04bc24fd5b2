"""The one schema definition: SQLAlchemy Core tables, indexes and triggers (migrations follow)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from taskscheduler.core.model import TaskStatus
from taskscheduler.core.states import DEPENDENCY_FAILED

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
WAITING_IN_QUEUE = ("SCHEDULED", "PENDING", "RETRYING")
WAITING = ("BLOCKED", *WAITING_IN_QUEUE)
FINISHED = ("SUCCESS", "FAILED", "CANCELLED")
DEFAULT_QUEUE = "default"
QUEUE_STATES = ("RUNNING", "PAUSED")

# A PENDING task is either ready (dispatched_at NULL: waiting in PostgreSQL for its queue to let
# it through) or dispatched (its message is with the broker). Dispatched and RUNNING tasks hold
# their queue's concurrency slots.
READY = sa.text("status = 'PENDING' AND dispatched_at IS NULL")
_IN_FLIGHT_SQL = "status IN ('PENDING', 'RUNNING') AND dispatched_at IS NOT NULL"
IN_FLIGHT = sa.text(_IN_FLIGHT_SQL)
# Every other task is settled. The listing indexes hold settled tasks only: a task in flight
# moves (let through, claimed) without writing into them, and is listed from ix_tasks_in_flight
# (see settled.py).
SETTLED = sa.text(f"NOT ({_IN_FLIGHT_SQL})")

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
    sa.Column("queue", sa.Text, nullable=False, server_default=DEFAULT_QUEUE),
    # 0 to 9, higher first among the ready tasks of a queue.
    sa.Column("priority", sa.SmallInteger, nullable=False, server_default="5"),
    sa.Column("concurrency_key", sa.Text, nullable=True),
    # When the dispatcher let the task through to the broker (PENDING and RUNNING only).
    sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
    # The W3C traceparent of the call that scheduled the task: its attempts join that trace.
    sa.Column("traceparent", sa.Text, nullable=True),
    # The schedule whose fire made the task, and that fire's time (unique together).
    sa.Column("schedule_id", UUID(as_uuid=True), nullable=True),
    sa.Column("fire_time", sa.DateTime(timezone=True), nullable=True),
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
    # A workflow's step: its workflow and its name there (both NULL for a task of its own).
    sa.Column("workflow_id", UUID(as_uuid=True), nullable=True),
    sa.Column("step_name", sa.Text, nullable=True),
    # How many of the task's dependencies have not yet succeeded (BLOCKED while above 0); NULL
    # for a task that never had any.
    sa.Column("blocked_on", sa.Integer, nullable=True),
    # Whether other tasks depend on this one: only then does its end look for them (the
    # settle_dependents trigger's condition), so a task without dependents pays nothing.
    sa.Column("has_dependents", sa.Boolean, nullable=False, server_default=sa.false()),
    # What the running handler last reported ({"done", "total", "message"}) and when; kept
    # after the task ends.
    sa.Column("progress", JSONB, nullable=True),
    sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(f"status IN ({STATUS_NAMES})", name="status_known"),
    sa.CheckConstraint("attempt >= 0 AND attempt <= max_attempts", name="attempt_in_range"),
    sa.CheckConstraint("priority BETWEEN 0 AND 9", name="priority_in_range"),
    sa.Index(
        "ix_tasks_tenant_created_at_id",
        "tenant",
        sa.text("created_at DESC"),
        sa.text("id DESC"),
        postgresql_where=SETTLED,
    ),
    sa.Index(
        "ix_tasks_tenant_status_created_at_id",
        "tenant",
        "status",
        sa.text("created_at DESC"),
        sa.text("id DESC"),
        postgresql_where=SETTLED,
    ),
    sa.Index(
        "ix_tasks_tenant_kind_created_at_id",
        "tenant",
        "kind",
        sa.text("created_at DESC"),
        sa.text("id DESC"),
        postgresql_where=SETTLED,
    ),
    sa.Index(
        "ix_tasks_tenant_queue_created_at_id",
        "tenant",
        "queue",
        sa.text("created_at DESC"),
        sa.text("id DESC"),
        postgresql_where=SETTLED,
    ),
    # The dispatch order of a queue's ready tasks (per concurrency key where the queue caps keys).
    sa.Index(
        "ix_tasks_ready",
        "tenant",
        "queue",
        sa.text("priority DESC"),
        "run_at",
        "created_at",
        postgresql_where=READY,
    ),
    # The slots a queue's dispatched and running tasks hold, counted per key.
    sa.Index(
        "ix_tasks_in_flight",
        "tenant",
        "queue",
        "concurrency_key",
        postgresql_include=["status"],
        postgresql_where=IN_FLIGHT,
    ),
    # Exactly one task per fire of a schedule, however many dispatchers fire it; only the tasks
    # of schedules have an entry (the others' would be rewritten with each row version).
    sa.Index(
        "uq_tasks_schedule_id_fire_time",
        "schedule_id",
        "fire_time",
        unique=True,
        postgresql_where=sa.text("schedule_id IS NOT NULL"),
    ),
    # A schedule's unfinished tasks (its overlap policy looks for them).
    sa.Index(
        "ix_tasks_schedule_live",
        "schedule_id",
        postgresql_where=sa.text(
            "schedule_id IS NOT NULL AND status IN ('SCHEDULED', 'PENDING', 'RUNNING', 'RETRYING')"
        ),
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
    # Dispatched tasks only: a ready one has no republish time yet.
    sa.Index(
        "ix_tasks_republish_at",
        "republish_at",
        postgresql_where=sa.text("status = 'PENDING' AND dispatched_at IS NOT NULL"),
    ),
    # A workflow's steps (the tasks of no workflow have no entry).
    sa.Index(
        "ix_tasks_workflow_id_created_at_id",
        "workflow_id",
        sa.text("created_at DESC"),
        sa.text("id DESC"),
        postgresql_where=sa.text("workflow_id IS NOT NULL"),
    ),
    sa.Index(
        "uq_tasks_tenant_request_id",
        "tenant",
        "request_id",
        unique=True,
        postgresql_where=sa.text("request_id IS NOT NULL"),
    ),
    # Fresh planner statistics however long the history (migration 0006): analyze after every
    # 10,000 changed rows rather than 10% of the table, vacuum after 2% rather than 20%.
    postgresql_with={
        "autovacuum_analyze_scale_factor": "0",
        "autovacuum_analyze_threshold": "10000",
        "autovacuum_vacuum_scale_factor": "0.02",
    },
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
    # Vacuumed after 2% of its rows changed, as `tasks` (migration 0015): with the default 20%,
    # the soak found a fifth of its rows dead before each vacuum (retention deletes attempts
    # as fast as they are made), and on a long history each vacuum reads the whole table.
    postgresql_with={"autovacuum_vacuum_scale_factor": "0.02"},
)

# The edges of the dependency graph: `task_id` starts once `depends_on` has succeeded.
task_dependencies = sa.Table(
    "task_dependencies",
    metadata,
    sa.Column(
        "task_id",
        UUID(as_uuid=True),
        sa.ForeignKey("tasks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "depends_on",
        UUID(as_uuid=True),
        sa.ForeignKey("tasks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # The dependents of a task that ends (the settle_dependents trigger).
    sa.Index("ix_task_dependencies_depends_on", "depends_on"),
)

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    # RUNNING while a step has not finished, then SUCCESS, FAILED or CANCELLED (set by the
    # settle_dependents trigger when the last step ends).
    sa.Column("status", sa.Text, nullable=False, server_default="RUNNING"),
    sa.Column("on_failure", sa.Text, nullable=False),
    # Steps in all, those not yet terminal, and those that ended FAILED or CANCELLED.
    sa.Column("steps", sa.Integer, nullable=False),
    sa.Column("unfinished", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cancelled", sa.Integer, nullable=False, server_default="0"),
    # Set once every unfinished step has been cancelled (CancelWorkflow, or a failure under
    # CANCEL_WORKFLOW): a later end cancels nothing more.
    sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("request_id", sa.Text, nullable=True),
    sa.Column("request_fingerprint", sa.Text, nullable=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(
        "status IN ('RUNNING', 'SUCCESS', 'FAILED', 'CANCELLED')", name="status_known"
    ),
    sa.CheckConstraint("on_failure IN ('CANCEL_WORKFLOW', 'CONTINUE')", name="on_failure_known"),
    sa.CheckConstraint("unfinished >= 0 AND unfinished <= steps", name="unfinished_in_range"),
    sa.Index(
        "ix_workflows_tenant_created_at_id",
        "tenant",
        sa.text("created_at DESC"),
        sa.text("id DESC"),
    ),
    sa.Index(
        "uq_workflows_tenant_request_id",
        "tenant",
        "request_id",
        unique=True,
        postgresql_where=sa.text("request_id IS NOT NULL"),
    ),
    # The workflows to stop (CancelWorkflow, or a failure under CANCEL_WORKFLOW).
    sa.Index(
        "ix_workflows_stopping",
        "cancel_requested_at",
        postgresql_where=sa.text("cancel_requested_at IS NOT NULL AND status = 'RUNNING'"),
    ),
    sa.Index(
        "ix_workflows_finished_at",
        "finished_at",
        postgresql_where=sa.text("finished_at IS NOT NULL"),
    ),
)

# One row per worker process (a Celery worker's main process and each of its pool processes),
# written by its heartbeat thread. Its state is judged when read: LOST once heartbeat_at is
# older than LOST_AFTER_HEARTBEATS of the process's own heartbeat_seconds.
workers = sa.Table(
    "workers",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("celery_hostname", sa.Text, nullable=False),
    # The main process's name, for a pool process; '' for a main process.
    sa.Column("parent", sa.Text, nullable=False, server_default=""),
    # Empty: every queue.
    sa.Column("queues", ARRAY(sa.Text), nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("heartbeat_seconds", sa.Float, nullable=False),
    sa.Column(
        "started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "heartbeat_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
)

queues = sa.Table(
    "queues",
    metadata,
    sa.Column("tenant", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("state", sa.Text, nullable=False, server_default="RUNNING"),
    # A token bucket shared by every dispatcher: `tokens` as of `tokens_at`, refilled at
    # rate_per_second up to rate_burst. NULL rate: no limit.
    sa.Column("rate_per_second", sa.Float, nullable=True),
    sa.Column("rate_burst", sa.Integer, nullable=True),
    sa.Column("tokens", sa.Float, nullable=False, server_default="0"),
    sa.Column(
        "tokens_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("max_concurrent", sa.Integer, nullable=True),
    sa.Column("max_concurrent_per_key", sa.Integer, nullable=True),
    # Defaults for the queue's tasks, each NULL to leave it to the kind and the service.
    sa.Column("max_attempts", sa.Integer, nullable=True),
    sa.Column("initial_backoff_seconds", sa.Float, nullable=True),
    sa.Column("max_backoff_seconds", sa.Float, nullable=True),
    sa.Column("backoff_multiplier", sa.Float, nullable=True),
    sa.Column("jitter", sa.Boolean, nullable=True),
    sa.Column("timeout_seconds", sa.Float, nullable=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("state IN ('RUNNING', 'PAUSED')", name="state_known"),
)

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant", sa.Text, nullable=False),
    sa.Column("cron", sa.Text, nullable=False),
    sa.Column("time_zone", sa.Text, nullable=False),
    # The task template, as ScheduleTask takes it (NULL: the defaults at fire time).
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("queue", sa.Text, nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=True),
    sa.Column("concurrency_key", sa.Text, nullable=True),
    sa.Column("max_attempts", sa.Integer, nullable=True),
    sa.Column("initial_backoff_seconds", sa.Float, nullable=True),
    sa.Column("max_backoff_seconds", sa.Float, nullable=True),
    sa.Column("backoff_multiplier", sa.Float, nullable=True),
    sa.Column("jitter", sa.Boolean, nullable=True),
    sa.Column("timeout_seconds", sa.Float, nullable=True),
    sa.Column("overlap", sa.Text, nullable=False),
    sa.Column("catchup_window_seconds", sa.Float, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    # The next fire time; NULL while paused.
    sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
    # BUFFER_ONE: a fire kept until the schedule's running task has finished.
    sa.Column("buffered_fire_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_fire_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_task_id", UUID(as_uuid=True), nullable=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("overlap IN ('SKIP', 'ALLOW', 'BUFFER_ONE')", name="overlap_known"),
    sa.Index("ix_schedules_tenant_created_at_id", "tenant", "created_at", "id"),
    sa.Index("ix_schedules_next_fire_at", "next_fire_at", postgresql_where=sa.text("NOT paused")),
    sa.Index(
        "ix_schedules_buffered_fire_at",
        "buffered_fire_at",
        postgresql_where=sa.text("buffered_fire_at IS NOT NULL"),
    ),
)

STATUS_CHANNEL = "task_status"
"""The NOTIFY channel of status changes; payload: {"id", "status", "attempt", "version", "time"}."""
PROGRESS_CHANNEL = "task_progress"
"""The NOTIFY channel of progress reports; payload: {"id", "attempt", "progress", "time"}."""
WAKE_CHANNEL = "dispatch_wake"
"""NOTIFY channel that wakes the dispatchers: a queue created, resumed or its limits changed, a
schedule created, changed or resumed (a worker serving every queue listens too)."""


def _ddl(statement: str) -> sa.DDL:
    return sa.DDL(statement)  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it untyped


# The status-change triggers, as the migrations made them (0001). A status change bumps the
# row's version and NOTIFYs in the statement's own transaction, so a listener never hears of a
# change that did not commit, and every writer of `tasks` gets both without a line of its own.
TASK_TRIGGERS = (
    _ddl(
        """CREATE FUNCTION tasks_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END $$"""
    ),
    _ddl(
        """CREATE TRIGGER tasks_bump_version BEFORE UPDATE OF status ON tasks
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION tasks_bump_version()"""
    ),
    _ddl(
        f"""CREATE FUNCTION tasks_notify_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{STATUS_CHANNEL}', json_build_object(
        'id', NEW.id, 'status', NEW.status, 'attempt', NEW.attempt,
        'version', NEW.version, 'time', NEW.updated_at, 'run_at', NEW.run_at,
        'workflow_id', NEW.workflow_id)::text);
    RETURN NULL;
END $$"""
    ),
    _ddl(
        """CREATE TRIGGER tasks_notify_insert AFTER INSERT ON tasks
FOR EACH ROW EXECUTE FUNCTION tasks_notify_status()"""
    ),
    _ddl(
        """CREATE TRIGGER tasks_notify_update AFTER UPDATE OF status ON tasks
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION tasks_notify_status()"""
    ),
    # The end of a task with dependents or in a workflow (migration 0013), in the transaction
    # of the end itself, whoever writes it (a worker, a cancel, a lost lease): a dependent is
    # released exactly once, never before its last dependency's success commits. A release
    # decrements the dependent's blocked_on under its row lock: of two dependencies ending at
    # the same instant, the second waits for the first and sees its count. A FAILED or
    # CANCELLED end cancels the BLOCKED tasks below it (the walk stops at those already ended:
    # each ended one walked its own); under CANCEL_WORKFLOW it marks the workflow to stop and
    # wakes the dispatchers, which cancel its other steps one transaction each (see
    # workflow_repository.py for why not here). (`%%` is the DDL's way to write `%`.)
    _ddl(
        f"""CREATE FUNCTION tasks_settle_dependents() RETURNS trigger LANGUAGE plpgsql AS $$
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
            PERFORM pg_notify('{WAKE_CHANNEL}', NEW.workflow_id::text);
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
            error = format('{DEPENDENCY_FAILED}: dependency %%s ended %%s',
                NEW.id, NEW.status),
            updated_at = now()
        WHERE id IN (SELECT id FROM below) AND status = 'BLOCKED';
    END IF;
    RETURN NULL;
END $$"""
    ),
    _ddl(
        """CREATE TRIGGER tasks_settle_dependents AFTER UPDATE OF status ON tasks
FOR EACH ROW WHEN (
    OLD.status NOT IN ('SUCCESS', 'FAILED', 'CANCELLED')
    AND NEW.status IN ('SUCCESS', 'FAILED', 'CANCELLED')
    AND (NEW.has_dependents OR NEW.workflow_id IS NOT NULL)
)
EXECUTE FUNCTION tasks_settle_dependents()"""
    ),
)
"""The functions and triggers of `tasks`, created with it by `metadata.create_all`."""

for _statement in TASK_TRIGGERS:
    sa.event.listen(tasks, "after_create", _statement)
