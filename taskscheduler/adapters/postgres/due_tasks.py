"""The dispatcher's storage: move due SCHEDULED and RETRYING tasks to PENDING."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.schema import WAITING_FOR_TIMER, tasks
from taskscheduler.core.model import TaskStatus


class PostgresDueTasks:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def promote_due(self, limit: int) -> list[tuple[uuid.UUID, int]]:
        """Claims up to `limit` due rows (SKIP LOCKED: dispatchers never take the same row) and
        makes them PENDING; returns (id, next attempt number) of each."""
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
            .returning(tasks.c.id, tasks.c.attempt)
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                rows = (await conn.execute(statement)).all()
        return [(row.id, row.attempt + 1) for row in rows]

    async def next_due_time(self) -> datetime | None:
        query = sa.select(sa.func.min(tasks.c.run_at)).where(tasks.c.status.in_(WAITING_FOR_TIMER))
        with storage_errors():
            async with self._engine.connect() as conn:
                next_due: datetime | None = (await conn.execute(query)).scalar()
                return next_due
