"""The dispatcher's storage: move due SCHEDULED and RETRYING tasks to PENDING."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.schema import FINISHED, WAITING_FOR_TIMER, tasks
from taskscheduler.core.model import TaskStatus
from taskscheduler.settings import Settings


@dataclass(frozen=True)
class DueTask:
    """A task made PENDING by the dispatcher, to publish: its id, next attempt and timeout."""

    task_id: uuid.UUID
    attempt: int
    timeout: timedelta | None


class PostgresDueTasks:
    def __init__(
        self, engine: AsyncEngine, republish_after: timedelta, republish_max: timedelta
    ) -> None:
        self._engine = engine
        self._republish_after = republish_after
        self._republish_max = republish_max

    @classmethod
    def from_settings(cls, engine: AsyncEngine, settings: Settings) -> PostgresDueTasks:
        return cls(
            engine,
            republish_after=timedelta(seconds=settings.republish_after_seconds),
            republish_max=timedelta(seconds=settings.republish_max_seconds),
        )

    async def promote_due(self, limit: int) -> list[DueTask]:
        """Claims up to `limit` due SCHEDULED or RETRYING rows (SKIP LOCKED: dispatchers never
        take the same row) and makes them PENDING."""
        due = _claimable(
            sa.and_(tasks.c.status.in_(WAITING_FOR_TIMER), tasks.c.run_at <= sa.func.now()),
            tasks.c.run_at,
            limit,
        )
        return await self._publishable(
            due,
            status=TaskStatus.PENDING.value,
            updated_at=sa.func.now(),
            republish_at=sa.func.now() + self._republish_after,
            publish_count=0,
        )

    async def republish_lost(self, limit: int) -> list[DueTask]:
        """PENDING rows that no worker claimed by their republish time: their message may be
        lost, so they go out again, each time after twice the wait (up to republish_max)."""
        lost = _claimable(
            sa.and_(
                tasks.c.status == TaskStatus.PENDING.value,
                tasks.c.republish_at <= sa.func.now(),
            ),
            tasks.c.republish_at,
            limit,
        )
        backoff_seconds = sa.func.least(
            self._republish_after.total_seconds() * sa.func.power(2, tasks.c.publish_count + 1),
            self._republish_max.total_seconds(),
        )
        return await self._publishable(
            lost,
            republish_at=sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, backoff_seconds),
            publish_count=tasks.c.publish_count + 1,
        )

    async def _publishable(
        self, ids: sa.ScalarSelect[uuid.UUID], **values: object
    ) -> list[DueTask]:
        statement = (
            tasks.update()
            .where(tasks.c.id.in_(ids))
            .values(**values)
            .returning(tasks.c.id, tasks.c.attempt, tasks.c.timeout_seconds)
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                rows = (await conn.execute(statement)).all()
        return [
            DueTask(
                task_id=row.id,
                attempt=row.attempt + 1,
                timeout=None
                if row.timeout_seconds is None
                else timedelta(seconds=row.timeout_seconds),
            )
            for row in rows
        ]

    async def delete_finished(self, older_than: timedelta, limit: int) -> int:
        """Deletes up to `limit` tasks finished before `older_than` ago (their attempts go with
        them): small batches, so that no statement holds locks for long."""
        finished = _claimable(
            sa.and_(
                tasks.c.status.in_(FINISHED),
                tasks.c.finished_at < sa.func.now() - older_than,
            ),
            tasks.c.finished_at,
            limit,
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                result = await conn.execute(tasks.delete().where(tasks.c.id.in_(finished)))
        return int(result.rowcount)

    async def next_due_time(self) -> datetime | None:
        query = sa.select(sa.func.min(tasks.c.run_at)).where(tasks.c.status.in_(WAITING_FOR_TIMER))
        with storage_errors():
            async with self._engine.connect() as conn:
                next_due: datetime | None = (await conn.execute(query)).scalar()
                return next_due


def _claimable(
    condition: sa.ColumnElement[bool], order: sa.ColumnElement[Any], limit: int
) -> sa.ScalarSelect[uuid.UUID]:
    """Ids of up to `limit` rows meeting `condition`, locked, skipping rows others hold."""
    return (
        sa.select(tasks.c.id)
        .where(condition)
        .order_by(order)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
