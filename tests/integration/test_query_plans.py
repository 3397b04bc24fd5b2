"""Each hot query can be served by an index fitted to it (EXPLAIN with sequential scans
disabled, so that the small test table does not hide a missing index)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects import postgresql

from taskscheduler.adapters.postgres import settled
from taskscheduler.adapters.postgres.due_tasks import (
    UNCLAIMED_TOO_LONG,
    _chosen,
    _claimable,
    _next_by_key,
    _next_in_order,
)
from taskscheduler.adapters.postgres.insights import _failure_groups, _finished, _started
from taskscheduler.adapters.postgres.queue_repository import QUEUE_DEPTHS
from taskscheduler.adapters.postgres.schema import (
    FINISHED,
    IN_FLIGHT,
    WAITING_FOR_TIMER,
    queues,
    schedules,
    task_attempts,
    tasks,
)
from taskscheduler.core.model import TaskStatus

DIALECT = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]


def plan(db: psycopg.Connection[Any], statement: sa.ClauseElement) -> str:
    compiled = statement.compile(dialect=DIALECT, compile_kwargs={"literal_binds": True})
    db.execute("SET enable_seqscan = off")
    try:
        rows = db.execute(sql.SQL("EXPLAIN ") + sql.SQL(str(compiled))).fetchall()
    finally:
        db.execute("RESET enable_seqscan")
    return "\n".join(str(row[0]) for row in rows)


TENANT = "tenant-1"
SOME_ID = uuid.UUID("00000000-0000-4000-8000-000000000000")
LISTING = sa.select(tasks).where(tasks.c.tenant == TENANT)
NEWEST_FIRST = (tasks.c.created_at.desc(), tasks.c.id.desc())
OF_QUEUE = (tasks.c.tenant == TENANT, tasks.c.queue == "emails")
AN_HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)

HOT_QUERIES: dict[str, tuple[Any, str | tuple[str, ...]]] = {
    "GetTask": (
        sa.select(tasks).where(tasks.c.id == SOME_ID, tasks.c.tenant == TENANT),
        "pk_tasks",
    ),
    "GetTask attempts": (
        sa.select(task_attempts).where(task_attempts.c.task_id == SOME_ID),
        "pk_task_attempts",
    ),
    "ListTasks": (
        settled.newest_first(LISTING, (), 51),
        ("ix_tasks_tenant_created_at_id", "ix_tasks_in_flight"),
    ),
    "ListTasks by status": (
        settled.newest_first(LISTING, ["FAILED"], 51),
        "ix_tasks_tenant_status_created_at_id",
    ),
    "ListTasks by status, in flight": (
        settled.newest_first(LISTING, ["RUNNING"], 51),
        "ix_tasks_in_flight",
    ),
    "ListTasks by kind": (
        settled.newest_first(LISTING.where(tasks.c.kind == "demo.echo"), (), 51),
        ("ix_tasks_tenant_kind_created_at_id", "ix_tasks_in_flight"),
    ),
    "claim": (
        tasks.update()
        .where(tasks.c.id == SOME_ID, tasks.c.status == TaskStatus.PENDING.value)
        .values(status="RUNNING"),
        "pk_tasks",
    ),
    "due timers": (
        _claimable(
            sa.and_(tasks.c.status.in_(WAITING_FOR_TIMER), tasks.c.run_at <= sa.func.now()),
            tasks.c.run_at,
            100,
        ),
        "ix_tasks_due",
    ),
    "expired leases": (
        sa.select(tasks)
        .where(tasks.c.status == "RUNNING", tasks.c.lease_expires_at < sa.func.now())
        .order_by(tasks.c.lease_expires_at)
        .limit(100),
        "ix_tasks_lease_expires_at",
    ),
    "retention": (
        _claimable(
            sa.and_(
                tasks.c.status.in_(FINISHED),
                tasks.c.finished_at < sa.func.now() - timedelta(days=30),
            ),
            tasks.c.finished_at,
            1000,
        ),
        "ix_tasks_finished_at",
    ),
    "CountTasks, live": (
        sa.select(settled.count(tasks.c.tenant == TENANT, statuses=["PENDING"])),
        ("ix_tasks_tenant_status_created_at_id", "ix_tasks_in_flight"),
    ),
    "CountTasks, finished in the window": (
        sa.select(sa.func.count()).where(
            tasks.c.tenant == TENANT,
            tasks.c.status == "SUCCESS",
            tasks.c.finished_at >= sa.func.now() - timedelta(hours=1),
        ),
        "ix_tasks_finished_at",  # the window bounds what is read, whatever the history
    ),
    "ListTasks by queue": (
        settled.newest_first(LISTING.where(tasks.c.queue == "emails"), (), 51),
        ("ix_tasks_tenant_queue_created_at_id", "ix_tasks_in_flight"),
    ),
    "ListTasks by schedule": (
        settled.newest_first(LISTING.where(tasks.c.schedule_id == SOME_ID), (), 51),
        "uq_tasks_schedule_id_fire_time",
    ),
    "queue depth": (
        QUEUE_DEPTHS.where(queues.c.tenant == TENANT, queues.c.name == "emails"),
        ("pk_queues", "ix_tasks_in_flight"),
    ),
    "dispatch, by priority": (
        _next_in_order(OF_QUEUE).limit(100),
        "ix_tasks_ready",
    ),
    "dispatch, round robin by key": (
        _next_by_key(OF_QUEUE, 2).limit(100),
        "ix_tasks_ready",
    ),
    "dispatch, slots held": (
        sa.select(sa.func.count()).where(*OF_QUEUE, IN_FLIGHT),
        "ix_tasks_in_flight",
    ),
    "schedule overlap": (
        sa.select(
            sa.exists().where(
                tasks.c.schedule_id == SOME_ID,
                tasks.c.status.in_(["SCHEDULED", "PENDING", "RUNNING", "RETRYING"]),
            )
        ),
        "ix_tasks_schedule_live",
    ),
    "due schedules": (
        sa.select(schedules)
        .where(sa.not_(schedules.c.paused), schedules.c.next_fire_at <= sa.func.now())
        .order_by(schedules.c.next_fire_at)
        .limit(100),
        "ix_schedules_next_fire_at",
    ),
    "ListFailureGroups": (
        _failure_groups(TENANT, "", "", 100),
        ("ix_tasks_tenant_status_created_at_id", "pk_task_attempts", "ix_tasks_finished_at"),
    ),
    "GetActivity, finished": (
        _finished(TENANT, "").params(since=AN_HOUR_AGO),
        "ix_tasks_finished_at",  # the hour bounds what is read, whatever the history
    ),
    "GetActivity, started": (
        _started(TENANT, "").params(since=AN_HOUR_AGO),
        # the finished ones from the narrower of the finish-time and tenant-status indexes
        "ix_tasks_lease_expires_at",
    ),
    "lost messages": (
        _claimable(UNCLAIMED_TOO_LONG, tasks.c.republish_at, 100),
        "ix_tasks_republish_at",
    ),
}


ROWS = """
INSERT INTO tasks (id, tenant, queue, status, kind, payload, attempt, max_attempts,
    initial_backoff_seconds, max_backoff_seconds, backoff_multiplier, jitter, run_at,
    created_at, updated_at)
SELECT gen_random_uuid(), 'tenant-' || (n % 20), 'queue-' || (n % 5),
    (ARRAY['SUCCESS','SUCCESS','SUCCESS','FAILED','CANCELLED','PENDING','SCHEDULED'])[1 + n % 7],
    'kind-' || (n % 10), '{}'::jsonb, 0, 3, 1, 300, 2, true,
    now() + (n % 100) * interval '1 minute', now() - n * interval '1 second', now()
FROM generate_series(1, 20000) AS n;
UPDATE tasks SET finished_at = created_at, attempt = 1
    WHERE status IN ('SUCCESS', 'FAILED', 'CANCELLED');
INSERT INTO task_attempts (task_id, number, status, worker, started_at, finished_at, error_type)
SELECT id, 1, status, 'worker-1', created_at, finished_at,
    CASE WHEN status = 'FAILED' THEN 'TimeoutError' END
FROM tasks WHERE attempt = 1
"""


@pytest.fixture
def populated(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """Enough rows, spread over tenants, statuses and kinds, for plans to mean something."""
    db.execute(ROWS)
    # Both tables, so that no plan rests on what earlier tests and autovacuum left in the
    # statistics: an empty `task_attempts`, once vacuumed, is cheapest to read whole.
    db.execute("ANALYZE tasks, task_attempts")
    return db


@pytest.mark.parametrize("name", list(HOT_QUERIES))
def test_hot_query_uses_its_index(populated: psycopg.Connection[Any], name: str) -> None:
    db = populated
    statement, indexes = HOT_QUERIES[name]
    if isinstance(statement, sa.ScalarSelect):
        statement = statement.element  # the dispatcher's claim subquery, on its own
    explained = plan(db, statement)
    for index in [indexes] if isinstance(indexes, str) else indexes:
        assert index in explained, explained
    assert "Seq Scan" not in explained, explained


def test_a_dispatch_reads_the_ready_index_only_for_the_tasks_it_takes(
    db: psycopg.Connection[Any],
) -> None:
    """The taken rows are found again by primary key: a readiness condition beside the ids had
    the planner read every entry of the ready index (a bitmap) on each pass, as here: a burst of
    ready tasks into one queue."""
    db.execute(
        "INSERT INTO tasks (id, tenant, queue, status, kind, payload, max_attempts,"
        " initial_backoff_seconds, max_backoff_seconds, backoff_multiplier, jitter, run_at)"
        " SELECT gen_random_uuid(), %s, 'emails', 'PENDING', 'k', '{}', 3, 1, 300, 2, true, now()"
        " FROM generate_series(1, 3000)",
        (TENANT,),
    )
    db.execute(
        "INSERT INTO tasks (id, tenant, queue, status, kind, payload, max_attempts,"
        " initial_backoff_seconds, max_backoff_seconds, backoff_multiplier, jitter, run_at,"
        " finished_at, dispatched_at)"
        " SELECT gen_random_uuid(), 'other', 'default', 'SUCCESS', 'k', '{}', 3, 1, 300, 2, true,"
        " now(), now(), now() FROM generate_series(1, 3000)"
    )
    db.execute("ANALYZE tasks")
    statement = tasks.update().where(_chosen(OF_QUEUE, 100)).values(dispatched_at=sa.func.now())
    compiled = statement.compile(dialect=DIALECT, compile_kwargs={"literal_binds": True})
    with db.transaction(force_rollback=True):
        row = db.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + sql.SQL(str(compiled)))
        [[document]] = row.fetchall()
    read = sum(
        node["Actual Rows"]
        for node in _nodes(document[0]["Plan"])
        if node.get("Index Name") == "ix_tasks_ready"
    )
    assert 100 <= read <= 110, document


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)
