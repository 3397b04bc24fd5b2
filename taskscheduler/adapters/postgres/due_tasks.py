"""The dispatcher's storage: move due SCHEDULED and RETRYING tasks to PENDING."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.schema import WAITING_FOR_TIMER, tasks
from taskscheduler.core.model import TaskStatus


@dataclass(frozen=True)
class DueTask:
    """A task made PENDING by the dispatcher, to publish: its id, next attempt and timeout."""

    task_id: uuid.UUID
    attempt: int
    timeout: timedelta | None


class PostgresDueTasks:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def promote_due(self, limit: int) -> list[DueTask]:
        """Claims up to `limit` due rows (SKIP LOCKED: dispatchers never take the same row) and
        makes them PENDING."""
        due = (
            sa.select(tasks.c.id)
            .where(tasks.c.status.in_(WAITING_FOR_TIMER), tasks.c.run_at <= sa.func.now())
            .order_by(tasks.c.run_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            tasks.update()
            .where(tasks.c.id.in_(due))
            .values(status=TaskStatus.PENDING.value, updated_at=sa.func.now())
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

    async def next_due_time(self) -> datetime | None:
        query = sa.select(sa.func.min(tasks.c.run_at)).where(tasks.c.status.in_(WAITING_FOR_TIMER))
        with storage_errors():
            async with self._engine.connect() as conn:
                next_due: datetime | None = (await conn.execute(query)).scalar()
                return next_due
