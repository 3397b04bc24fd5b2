"""The api's queue storage (async): a tenant's queues, their state and their counts."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskscheduler.adapters.postgres import settled
from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.rows import (
    QUEUE_FIELD_COLUMNS,
    queue_from_row,
    queue_settings_values,
)
from taskscheduler.adapters.postgres.schema import (
    DEFAULT_QUEUE,
    WAITING,
    WAITING_IN_QUEUE,
    WAKE_CHANNEL,
    queues,
    schedules,
    tasks,
)
from taskscheduler.core.errors import (
    QueueExists,
    QueueInUse,
    QueueNotFound,
    unknown_queue,
)
from taskscheduler.core.model import Queue, QueueSettings, QueueState, TaskStatus

_OF_QUEUE = (tasks.c.tenant == queues.c.tenant, tasks.c.queue == queues.c.name)


def _counted(*statuses: str) -> sa.ColumnElement[int]:
    return settled.count(*_OF_QUEUE, statuses=statuses)


# A queue's depth: the tasks that wait in it, and those that run.
_WAITING = _counted(*WAITING).label("waiting")
_RUNNING = _counted(TaskStatus.RUNNING.value).label("running")
_WITH_COUNTS = sa.select(queues, _WAITING, _RUNNING)
QUEUE_DEPTHS = sa.select(queues.c.tenant, queues.c.name, queues.c.state, _WAITING, _RUNNING)
"""Every queue's tenant, name, state and depth (the metrics read it at each scrape)."""


class PostgresQueueRepository:
    """Implements core.ports.QueueRepository on an async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._tenants_with_default: set[str] = set()

    async def create(self, tenant: str, name: str, settings: QueueSettings) -> Queue:
        if name == DEFAULT_QUEUE:
            await self._ensure_default(tenant)
            raise QueueExists(name)
        statement = (
            pg_insert(queues)
            .values(tenant=tenant, name=name, **queue_settings_values(settings))
            .on_conflict_do_nothing()
            .returning(*queues.c)
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                row = (await conn.execute(statement)).mappings().first()
                if row is not None:
                    await _announce(conn)  # workers serving every queue subscribe to it
        if row is None:
            raise QueueExists(name)
        return queue_from_row(row)

    async def get(self, tenant: str, name: str) -> Queue | None:
        if name == DEFAULT_QUEUE:
            await self._ensure_default(tenant)
        query = _WITH_COUNTS.where(queues.c.tenant == tenant, queues.c.name == name)
        with storage_errors():
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).mappings().first()
        return None if row is None else queue_from_row(row)

    async def get_for_tasks(self, tenant: str, name: str) -> Queue | None:
        if name == DEFAULT_QUEUE:
            await self._ensure_default(tenant)
        query = sa.select(queues).where(queues.c.tenant == tenant, queues.c.name == name)
        with storage_errors():
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).mappings().first()
        return None if row is None else queue_from_row(row)

    async def list(self, tenant: str, limit: int, after: str) -> list[Queue]:
        await self._ensure_default(tenant)
        query = (
            _WITH_COUNTS.where(queues.c.tenant == tenant, queues.c.name > after)
            .order_by(queues.c.name)
            .limit(limit)
        )
        with storage_errors():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).mappings().all()
        return [queue_from_row(row) for row in rows]

    async def update(
        self, tenant: str, name: str, settings: QueueSettings, fields: frozenset[str]
    ) -> Queue | None:
        if name == DEFAULT_QUEUE:
            await self._ensure_default(tenant)
        values = queue_settings_values(settings)
        changed = {
            column: values[column] for field in fields for column in QUEUE_FIELD_COLUMNS[field]
        }
        statement = (
            queues.update()
            .where(queues.c.tenant == tenant, queues.c.name == name)
            .values(updated_at=sa.func.now(), **changed)
            .returning(queues.c.name)
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                if (await conn.execute(statement)).first() is None:
                    return None
                await _announce(conn)  # raised limits may let tasks through
        return await self.get(tenant, name)

    async def delete(self, tenant: str, name: str) -> None:
        this_queue = (queues.c.tenant == tenant, queues.c.name == name)
        with storage_errors():
            async with self._engine.begin() as conn:
                # The row lock waits for schedules of tasks into the queue that are under way;
                # the next statement then sees their tasks.
                locked = sa.select(queues.c.name).where(*this_queue).with_for_update()
                if (await conn.execute(locked)).first() is None:
                    raise QueueNotFound(name)
                live = sa.select(
                    settled.exists(
                        tasks.c.tenant == tenant,
                        tasks.c.queue == name,
                        statuses=[*WAITING, TaskStatus.RUNNING.value],
                    )
                )
                if (await conn.execute(live)).scalar():
                    raise QueueInUse(
                        f"tasks of queue {name!r} still wait or run: purge it, or let them finish"
                    )
                used = sa.exists().where(schedules.c.tenant == tenant, schedules.c.queue == name)
                if (await conn.execute(sa.select(used))).scalar():
                    raise QueueInUse(f"schedules make tasks in queue {name!r}: change them first")
                await conn.execute(queues.delete().where(*this_queue))

    async def set_state(self, tenant: str, name: str, state: QueueState) -> Queue | None:
        if name == DEFAULT_QUEUE:
            await self._ensure_default(tenant)
        statement = (
            queues.update()
            .where(queues.c.tenant == tenant, queues.c.name == name)
            .values(state=state.value, updated_at=sa.func.now())
            .returning(queues.c.name)
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                # Waits for a dispatcher busy with the queue (it holds the row) to commit.
                if (await conn.execute(statement)).first() is None:
                    return None
                if state is QueueState.PAUSED:
                    await conn.execute(_recall_dispatched(tenant, name))
                else:
                    await _announce(conn)
        return await self.get(tenant, name)

    async def purge(self, tenant: str, name: str) -> int | None:
        if await self.get_for_tasks(tenant, name) is None:
            return None
        now = sa.func.now()
        statement = (
            tasks.update()
            # Not the BLOCKED ones: they end with their dependencies (or their workflow).
            .where(
                tasks.c.tenant == tenant,
                tasks.c.queue == name,
                tasks.c.status.in_(WAITING_IN_QUEUE),
            )
            .values(
                status=TaskStatus.CANCELLED.value,
                finished_at=now,
                updated_at=now,
                cancel_requested_at=now,
                error="cancelled by a purge of the queue",
            )
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                # The queue first, as a dispatch pass and a pause take it: then the tasks.
                await conn.execute(
                    sa.select(queues.c.name)
                    .where(queues.c.tenant == tenant, queues.c.name == name)
                    .with_for_update(key_share=True)
                )
                return int((await conn.execute(statement)).rowcount)

    async def _ensure_default(self, tenant: str) -> None:
        """Creates the tenant's default queue on first need; it is never deleted, so once per
        tenant and process."""
        if tenant in self._tenants_with_default:
            return
        statement = (
            pg_insert(queues).values(tenant=tenant, name=DEFAULT_QUEUE).on_conflict_do_nothing()
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                await conn.execute(statement)
        self._tenants_with_default.add(tenant)


async def hold_queues(
    conn: AsyncConnection, tenant: str, names: set[str], field: str = "queue"
) -> None:
    """Keeps the named queues from being deleted until the transaction commits (a deletion
    checks for tasks and schedules first); InvalidArgument naming `field` for a missing one.
    The default queue is never deleted."""
    missing = sorted(await missing_queues(conn, {(tenant, name) for name in names}))
    if missing:
        raise unknown_queue(field, missing[0][1])


async def missing_queues(
    conn: AsyncConnection, named: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Holds the queues named by (tenant, name) as hold_queues does, and returns those that do
    not exist."""
    named = {(tenant, name) for tenant, name in named if name != DEFAULT_QUEUE}
    if not named:
        return set()
    held = sa.select(queues.c.tenant, queues.c.name).where(
        sa.tuple_(queues.c.tenant, queues.c.name).in_(sorted(named))
    )
    rows = await conn.execute(held.with_for_update(key_share=True, read=True))
    return named - {(tenant, name) for tenant, name in rows}


def _recall_dispatched(tenant: str, name: str) -> sa.Update:
    """The queue's dispatched tasks that no worker has claimed wait again in PostgreSQL: a
    worker that takes their message finds them not dispatched and leaves them alone."""
    return (
        tasks.update()
        .where(
            tasks.c.tenant == tenant,
            tasks.c.queue == name,
            tasks.c.status == TaskStatus.PENDING.value,
            tasks.c.dispatched_at.isnot(None),
        )
        .values(dispatched_at=None, republish_at=None)
    )


async def _announce(conn: AsyncConnection) -> None:
    """Wakes the dispatchers (and the workers' queue watchers) when the transaction commits."""
    await conn.execute(sa.select(sa.func.pg_notify(WAKE_CHANNEL, "")))
