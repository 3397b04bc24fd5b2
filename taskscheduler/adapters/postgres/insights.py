"""What the overviews read (async): FAILED tasks grouped by their last attempt's error type, and
each queue's recent minutes, from the finish-time and running-lease indexes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.schema import FINISHED, task_attempts, tasks
from taskscheduler.core.model import TaskStatus
from taskscheduler.core.ports import ActivityCounts, FailureGroup

_LAST_ATTEMPT = sa.join(
    tasks,
    task_attempts,
    sa.and_(task_attempts.c.task_id == tasks.c.id, task_attempts.c.number == tasks.c.attempt),
)
_ERROR_TYPE = sa.func.coalesce(task_attempts.c.error_type, "")
_SINCE = sa.bindparam("since", type_=sa.DateTime(timezone=True))
_FIRST_MINUTE = sa.select(
    sa.func.date_trunc("minute", sa.func.now())
    - sa.func.make_interval(0, 0, 0, 0, 0, sa.bindparam("minutes", type_=sa.Integer()) - 1)
)


def _failure_groups(tenant: str, kind: str, queue: str, limit: int) -> sa.Select[Any]:
    """The groups, each with its latest task found by its finish time (the finish-time index)."""
    failed = [tasks.c.tenant == tenant, tasks.c.status == TaskStatus.FAILED.value]
    if kind:
        failed.append(tasks.c.kind == kind)
    if queue:
        failed.append(tasks.c.queue == queue)
    groups = (
        sa.select(
            _ERROR_TYPE.label("error_type"),
            sa.func.count().label("count"),
            sa.func.min(tasks.c.finished_at).label("first_finish_time"),
            sa.func.max(tasks.c.finished_at).label("last_finish_time"),
        )
        .select_from(_LAST_ATTEMPT)
        .where(*failed)
        .group_by(_ERROR_TYPE)
        .order_by(sa.func.count().desc(), _ERROR_TYPE)
        .limit(limit)
        .cte("groups")
    )
    latest = (
        sa.select(tasks.c.id.label("latest_task_id"), task_attempts.c.error_message)
        .select_from(_LAST_ATTEMPT)
        .where(
            *failed,
            tasks.c.finished_at == groups.c.last_finish_time,
            groups.c.error_type == _ERROR_TYPE,
        )
        .order_by(tasks.c.id)
        .limit(1)
        .lateral("latest")
    )
    return (
        sa.select(groups, latest.c.latest_task_id, latest.c.error_message)
        .select_from(groups.join(latest, sa.true()))
        .order_by(groups.c.count.desc(), groups.c.error_type)
    )


def _minute(column: sa.ColumnElement[Any]) -> sa.ColumnElement[datetime]:
    return sa.func.date_trunc("minute", column).label("minute")


def _finished(tenant: str, queue: str) -> sa.Select[Any]:
    """Per queue and minute of finishing: those that succeeded, those that failed."""
    minute = _minute(tasks.c.finished_at)
    return (
        sa.select(
            tasks.c.queue,
            minute,
            sa.func.count().filter(tasks.c.status == TaskStatus.SUCCESS.value).label("succeeded"),
            sa.func.count().filter(tasks.c.status == TaskStatus.FAILED.value).label("failed"),
        )
        .where(
            tasks.c.tenant == tenant,
            tasks.c.status.in_(FINISHED),
            tasks.c.finished_at >= _SINCE,
            *([tasks.c.queue == queue] if queue else []),
        )
        .group_by(tasks.c.queue, minute)
    )


def _started(tenant: str, queue: str) -> sa.Select[Any]:
    """Per queue and minute of starting: the latest attempts started (of tasks finished since,
    or running), and their wait from run_at. A task that waited for dependencies has no wait
    of its own here: its run_at is when it was created, not when its dependencies let it go."""
    minute = _minute(tasks.c.started_at)
    waited = sa.case(
        (
            tasks.c.blocked_on.is_(None),
            sa.func.greatest(sa.extract("epoch", tasks.c.started_at - tasks.c.run_at), 0),
        )
    )

    def percentile(fraction: float, name: str) -> sa.ColumnElement[float]:
        return sa.func.percentile_cont(fraction).within_group(waited).label(name)

    return (
        sa.select(
            tasks.c.queue,
            minute,
            sa.func.count().label("started"),
            percentile(0.5, "wait_p50"),
            percentile(0.95, "wait_p95"),
        )
        .where(
            tasks.c.tenant == tenant,
            tasks.c.started_at >= _SINCE,
            sa.or_(
                sa.and_(tasks.c.status.in_(FINISHED), tasks.c.finished_at >= _SINCE),
                tasks.c.status == TaskStatus.RUNNING.value,
            ),
            *([tasks.c.queue == queue] if queue else []),
        )
        .group_by(tasks.c.queue, minute)
    )


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


class PostgresInsights:
    """Implements core.ports.InsightsReader on an async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def failure_groups(
        self, tenant: str, kind: str, queue: str, limit: int
    ) -> list[FailureGroup]:
        with storage_errors():
            async with self._engine.connect() as conn:
                found = await conn.execute(_failure_groups(tenant, kind, queue, limit))
                rows = found.mappings().all()
        return [
            FailureGroup(
                error_type=row["error_type"],
                count=row["count"],
                first_finish_time=row["first_finish_time"],
                last_finish_time=row["last_finish_time"],
                latest_task_id=row["latest_task_id"],
                latest_message=row["error_message"] or "",
            )
            for row in rows
        ]

    async def activity(
        self, tenant: str, queue: str, minutes: int
    ) -> tuple[datetime, list[ActivityCounts]]:
        with storage_errors():
            async with self._engine.connect() as conn:
                since = (await conn.execute(_FIRST_MINUTE, {"minutes": minutes})).scalar_one()
                window = {"since": since}
                finished = (await conn.execute(_finished(tenant, queue), window)).mappings().all()
                started = (await conn.execute(_started(tenant, queue), window)).mappings().all()
        merged: dict[tuple[str, datetime], dict[str, Any]] = {}
        for row in finished:
            merged[row["queue"], row["minute"]] = dict(row)
        for row in started:
            counts = merged.setdefault((row["queue"], row["minute"]), {})
            counts |= dict(row)
        return since, [
            ActivityCounts(
                queue=queue_name,
                minute=minute,
                succeeded=counts.get("succeeded", 0),
                failed=counts.get("failed", 0),
                started=counts.get("started", 0),
                wait_p50=_seconds(counts.get("wait_p50")),
                wait_p95=_seconds(counts.get("wait_p95")),
            )
            for (queue_name, minute), counts in merged.items()
        ]
