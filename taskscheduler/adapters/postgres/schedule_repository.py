"""Schedule storage (async): a tenant's schedules, and the due ones a dispatcher holds while it
fires them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.queue_repository import hold_queues
from taskscheduler.adapters.postgres.rows import (
    SCHEDULE_FIELD_COLUMNS,
    schedule_from_row,
    schedule_spec_values,
)
from taskscheduler.adapters.postgres.schema import WAKE_CHANNEL, schedules, tasks
from taskscheduler.core.model import (
    ResourcePosition,
    Schedule,
    ScheduleSpec,
    TaskStatus,
)

_LIVE = [status.value for status in TaskStatus if not status.is_terminal]


class PostgresScheduleRepository:
    """Implements core.ports.ScheduleRepository on an async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, tenant: str, spec: ScheduleSpec, next_fire: datetime | None) -> Schedule:
        statement = (
            schedules.insert()
            .values(
                id=uuid.uuid4(),
                tenant=tenant,
                next_fire_at=next_fire,
                paused=next_fire is None,
                **schedule_spec_values(spec),
            )
            .returning(*schedules.c)
        )
        created = await self._write_one(statement, (tenant, spec.task.queue))
        assert created is not None  # an insert returns its row
        return created

    async def get(self, tenant: str, schedule_id: uuid.UUID) -> Schedule | None:
        query = sa.select(schedules).where(*_this(tenant, schedule_id))
        with storage_errors():
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).mappings().first()
        return None if row is None else schedule_from_row(row)

    async def list(self, tenant: str, limit: int, after: ResourcePosition | None) -> list[Schedule]:
        query = (
            sa.select(schedules)
            .where(schedules.c.tenant == tenant)
            .order_by(schedules.c.created_at, schedules.c.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(
                sa.tuple_(schedules.c.created_at, schedules.c.id)
                > (after.create_time, after.resource_id)
            )
        with storage_errors():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).mappings().all()
        return [schedule_from_row(row) for row in rows]

    async def update(
        self,
        tenant: str,
        schedule_id: uuid.UUID,
        spec: ScheduleSpec,
        fields: frozenset[str],
        next_fire: datetime | None,
    ) -> Schedule | None:
        values = schedule_spec_values(spec)
        changed = {
            column: values[column] for name in fields for column in SCHEDULE_FIELD_COLUMNS[name]
        }
        if next_fire is not None:
            changed["next_fire_at"] = next_fire
        statement = (
            schedules.update()
            .where(*_this(tenant, schedule_id))
            .values(updated_at=sa.func.now(), **changed)
            .returning(*schedules.c)
        )
        queue = (tenant, spec.task.queue) if "task" in fields else None
        return await self._write_one(statement, queue)

    async def delete(self, tenant: str, schedule_id: uuid.UUID) -> bool:
        with storage_errors():
            async with self._engine.begin() as conn:
                result = await conn.execute(schedules.delete().where(*_this(tenant, schedule_id)))
        return bool(result.rowcount)

    async def set_paused(
        self, tenant: str, schedule_id: uuid.UUID, paused: bool, next_fire: datetime | None
    ) -> Schedule | None:
        statement = (
            schedules.update()
            .where(*_this(tenant, schedule_id))
            .values(
                paused=paused,
                next_fire_at=next_fire,
                buffered_fire_at=None,
                updated_at=sa.func.now(),
            )
            .returning(*schedules.c)
        )
        return await self._write_one(statement)

    async def fired(
        self, tenant: str, schedule_id: uuid.UUID, fire_time: datetime, task_id: uuid.UUID
    ) -> None:
        statement = (
            schedules.update()
            .where(*_this(tenant, schedule_id))
            .values(last_fire_at=fire_time, last_task_id=task_id, updated_at=sa.func.now())
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                await conn.execute(statement)

    async def _write_one(
        self, statement: sa.Executable, queue: tuple[str, str] | None = None
    ) -> Schedule | None:
        """Runs a write of one schedule; `queue` (tenant, name): the queue its template names,
        held against a deletion until the write commits."""
        with storage_errors():
            async with self._engine.begin() as conn:
                if queue is not None:
                    await hold_queues(conn, queue[0], {queue[1]}, field="task.queue")
                row = (await conn.execute(statement)).mappings().first()
                if row is not None:
                    # Wakes the dispatchers: the schedule may now fire sooner than they plan.
                    await conn.execute(sa.select(sa.func.pg_notify(WAKE_CHANNEL, "")))
        return None if row is None else schedule_from_row(row)

    @asynccontextmanager
    async def due(self, limit: int) -> AsyncIterator[PostgresDueSchedules]:
        has_live = _has_live_task(schedules.c.id)
        query = (
            sa.select(schedules, sa.func.now().label("now"))
            .where(
                sa.or_(
                    sa.and_(sa.not_(schedules.c.paused), schedules.c.next_fire_at <= sa.func.now()),
                    sa.and_(schedules.c.buffered_fire_at.isnot(None), sa.not_(has_live)),
                )
            )
            .order_by(schedules.c.next_fire_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                rows = (await conn.execute(query)).mappings().all()
                now = rows[0]["now"] if rows else datetime.now().astimezone()
                yield PostgresDueSchedules(conn, now, [schedule_from_row(row) for row in rows])


def _has_live_task(schedule_id: sa.ColumnElement[uuid.UUID]) -> sa.Exists:
    return sa.exists().where(tasks.c.schedule_id == schedule_id, tasks.c.status.in_(_LIVE))


class PostgresDueSchedules:
    """Implements core.ports.DueSchedules: the schedules locked by the pass's transaction.
    The tasks themselves are stored by the TaskManager, in transactions of their own."""

    def __init__(self, conn: AsyncConnection, now: datetime, held: list[Schedule]) -> None:
        self._conn = conn
        self.now = now
        self.schedules = held

    async def has_live_task(self, schedule_id: uuid.UUID) -> bool:
        # A statement of its own: it sees tasks committed after the pass began.
        query = sa.select(_has_live_task(sa.literal(schedule_id)))
        return bool((await self._conn.execute(query)).scalar())

    async def advance(
        self,
        schedule_id: uuid.UUID,
        next_fire: datetime | None,
        buffered: datetime | None,
        last_fire: datetime | None,
        last_task_id: uuid.UUID | None,
    ) -> None:
        await self._conn.execute(
            schedules.update()
            .where(schedules.c.id == schedule_id)
            .values(
                next_fire_at=next_fire,
                buffered_fire_at=buffered,
                last_fire_at=last_fire,
                last_task_id=last_task_id,
            )
        )


def _this(tenant: str, schedule_id: uuid.UUID) -> tuple[sa.ColumnElement[bool], ...]:
    return (schedules.c.tenant == tenant, schedules.c.id == schedule_id)
