"""The api's task storage (async): insert, read, list and cancel with guarded statements."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskscheduler.adapters.postgres import settled
from taskscheduler.adapters.postgres.compiled import Compiled
from taskscheduler.adapters.postgres.dependencies import (
    hold_dependencies,
    insert_edges,
    record_cancelled,
)
from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.group_commit import GroupCommit
from taskscheduler.adapters.postgres.queue_repository import hold_queues, missing_queues
from taskscheduler.adapters.postgres.rows import INSERTED_COLUMNS, insert_values, task_from_row
from taskscheduler.adapters.postgres.schema import (
    DEFAULT_QUEUE,
    READY,
    queues,
    task_attempts,
    task_dependencies,
    tasks,
    workflows,
)
from taskscheduler.core.errors import IdempotencyConflict, StorageUnavailable, unknown_queue
from taskscheduler.core.model import (
    NewTask,
    PageCursor,
    QueueState,
    Task,
    TaskFilter,
    TaskPage,
    TaskStatus,
)
from taskscheduler.core.ports import TaskMessage, TaskPublisher
from taskscheduler.core.states import CANCELLABLE
from taskscheduler.settings import Settings

log = logging.getLogger("taskscheduler.store")

GROUP_MOST = 500
"""Most ScheduleTask calls one group commit stores."""

_CANCELLABLE = sorted(status.value for status in CANCELLABLE)
_RUNNING = tasks.c.status == TaskStatus.RUNNING.value

# One statement for one task and for a batch of any size, the rows sent as one array per
# column: its text is the same for every batch (parsed and planned once per connection, not
# rebuilt from thousands of parameters), and it is the whole transaction of a group commit
# (autocommit: no BEGIN and COMMIT round trips). It holds the named queues (FOR KEY SHARE: a
# deletion waits for it) and skips the rows of queues that do not exist; with direct dispatch
# (see PostgresTaskRepository) it reads the queues that hold nothing back FOR SHARE and lets
# through, by the database's clock, as many of each queue's PENDING rows as it has room for at
# the broker, by priority then order.
_INSERTED = [tasks.c[name] for name in INSERTED_COLUMNS]
_NEW_ROWS = (
    sa.func.unnest(*(sa.bindparam(column.name, type_=ARRAY(column.type)) for column in _INSERTED))
    .table_valued(*(column.name for column in _INSERTED), with_ordinality="position")
    .render_derived(with_types=False)
    .alias("new_rows")
)
_RANKED_ROWS = (
    sa.select(
        sa.literal_column(f"{_NEW_ROWS.name}.*"),
        sa.func.row_number()
        .over(
            partition_by=[_NEW_ROWS.c.tenant, _NEW_ROWS.c.queue, _NEW_ROWS.c.status],
            order_by=[_NEW_ROWS.c.priority.desc(), _NEW_ROWS.c.position],
        )
        .label("nth"),
    )
    .select_from(_NEW_ROWS)
    .cte("ranked")
)
# The CTE's columns, named for the statements that read it: selected as new_rows.*, as
# SQLAlchemy would label each one and so lengthen the text past psycopg's cache (compiled.py).
_RANKED = sa.table(
    _RANKED_ROWS.name, *(sa.column(name) for name in (*INSERTED_COLUMNS, "position", "nth"))
)
_NAMED = sa.tuple_(queues.c.tenant, queues.c.name).in_(sa.select(_RANKED.c.tenant, _RANKED.c.queue))
_HELD = (
    sa.select(queues.c.tenant, queues.c.name)
    .where(_NAMED)
    .with_for_update(key_share=True, read=True)
    .cte("held")
)


def _open_queues() -> sa.CTE:
    """The named queues that hold nothing back, with their room at the broker (the `ahead`
    parameter less their tasks there and unclaimed), each row FOR SHARE."""
    of_queue = (tasks.c.tenant == queues.c.tenant, tasks.c.queue == queues.c.name)
    unclaimed = (
        sa.select(sa.func.count())
        .where(
            *of_queue, tasks.c.status == TaskStatus.PENDING.value, tasks.c.dispatched_at.isnot(None)
        )
        .scalar_subquery()
    )
    return (
        sa.select(queues.c.tenant, queues.c.name, unclaimed.label("unclaimed"))
        .where(
            _NAMED,
            queues.c.state == QueueState.RUNNING.value,
            queues.c.rate_per_second.is_(None),
            queues.c.max_concurrent.is_(None),
            queues.c.max_concurrent_per_key.is_(None),
            sa.not_(sa.exists().where(*of_queue, READY)),
        )
        .with_for_update(of=queues, read=True)
        .cte("open_queues")
    )


def _insert_statement(direct: bool) -> sa.Insert:
    """The insert, with direct dispatch or without it."""
    rows = _RANKED
    exists = sa.or_(
        rows.c.queue == DEFAULT_QUEUE,
        sa.exists().where(_HELD.c.tenant == rows.c.tenant, _HELD.c.name == rows.c.queue),
    )
    source: sa.FromClause = rows
    let_through: sa.ColumnElement[bool] = sa.false()
    unclaimed: sa.ColumnElement[Any] = sa.null()
    ctes: list[sa.CTE] = [_RANKED_ROWS, _HELD]
    if direct:
        open_queues = _open_queues()
        ctes.append(open_queues)
        of_row = sa.and_(open_queues.c.tenant == rows.c.tenant, open_queues.c.name == rows.c.queue)
        source = rows.outerjoin(open_queues, of_row)
        room = sa.bindparam("ahead", type_=sa.Integer()) - open_queues.c.unclaimed
        let_through = sa.and_(rows.c.status == TaskStatus.PENDING.value, rows.c.nth <= room)
        # Written out: SQLAlchemy adds `tasks` to the FROM of a subquery in RETURNING.
        unclaimed = sa.literal_column(
            "(SELECT open_queues.unclaimed FROM open_queues"
            " WHERE open_queues.tenant = tasks.tenant AND open_queues.name = tasks.queue)"
        )
    republish = sa.func.now() + sa.bindparam("republish_after", type_=sa.Interval())
    chosen = (
        sa.select(
            *(rows.c[column.name] for column in _INSERTED),
            sa.case((let_through, sa.func.now()), else_=sa.null()),
            sa.case((let_through, republish), else_=sa.null()),
        )
        .select_from(source)
        .where(exists)
        .order_by(rows.c.position)
    )
    return (
        pg_insert(tasks)
        .from_select(
            [*(column.name for column in _INSERTED), "dispatched_at", "republish_at"], chosen
        )
        .on_conflict_do_nothing(
            index_elements=[tasks.c.tenant, tasks.c.request_id],
            index_where=tasks.c.request_id.isnot(None),
        )
        .returning(sa.literal_column("tasks.*"), unclaimed.label("unclaimed"))
        .add_cte(*ctes)
    )


# Run on the driver's connection (see compiled.py): per call, SQLAlchemy's execution of this
# statement cost the api more CPU than the statement's round trip.
_INSERT = Compiled.of(_insert_statement(direct=False))
_INSERT_DIRECT = Compiled.of(_insert_statement(direct=True))


def _as_arrays(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows as one list per column of _NEW_ROWS, in the rows' order."""
    arrays = {name: [row[name] for row in rows] for name in INSERTED_COLUMNS}
    arrays[tasks.c.payload.name] = [Jsonb(payload) for payload in arrays[tasks.c.payload.name]]
    return arrays


def _in_key_order(news: list[NewTask]) -> list[NewTask]:
    """Rows in the order of their idempotency keys: two transactions inserting the same keys
    then wait for each other in one order, never in a cycle (a deadlock). A stable sort: of two
    calls with one key, the first to arrive stores the task."""
    return sorted(news, key=lambda new: (new.tenant, new.request_id))


@dataclass(frozen=True)
class _LetThrough:
    """Tasks stored already let through their queue: to publish after the commit."""

    messages: list[TaskMessage]
    backlog: dict[str, int]
    counts: dict[tuple[str, str], int]  # let through, by (tenant, queue)


# Built once, as the other statements of every call: SQLAlchemy then finds their compiled form
# by identity instead of building and hashing a new statement per call.
_GET = sa.select(tasks).where(
    tasks.c.id == sa.bindparam("task_id"), tasks.c.tenant == sa.bindparam("tenant")
)
_ATTEMPTS = (
    sa.select(task_attempts)
    .where(task_attempts.c.task_id == sa.bindparam("task_id"))
    .order_by(task_attempts.c.number)
)

_DEPENDS_ON = (
    sa.select(task_dependencies.c.depends_on)
    .where(task_dependencies.c.task_id == sa.bindparam("task_id"))
    .order_by(task_dependencies.c.depends_on)
)

_LOCK_WORKFLOW_OF_BLOCKED = (
    sa.select(workflows.c.id)
    .where(
        workflows.c.id
        == sa.select(tasks.c.workflow_id)
        .where(
            tasks.c.id == sa.bindparam("task_id"),
            tasks.c.tenant == sa.bindparam("of_tenant"),
            tasks.c.status == TaskStatus.BLOCKED.value,
        )
        .scalar_subquery()
    )
    .with_for_update(key_share=True)
)


def cancel_statement(*where: sa.ColumnElement[bool], error: str | None = None) -> sa.Update:
    """Cancels the waiting tasks among `where`, and asks the RUNNING ones to stop: a worker
    records CANCELLED once the handler has returned (the README's "Task life cycle"). `error`:
    what the cancelled ones record as their error."""
    now = sa.func.now()
    values: dict[str, Any] = {
        "status": sa.case((_RUNNING, tasks.c.status), else_=TaskStatus.CANCELLED.value),
        "finished_at": sa.case((_RUNNING, tasks.c.finished_at), else_=now),
        "cancel_requested_at": sa.func.coalesce(tasks.c.cancel_requested_at, now),
        "updated_at": now,
    }
    if error is not None:
        values["error"] = sa.case((_RUNNING, tasks.c.error), else_=error)
    return tasks.update().where(*where, tasks.c.status.in_(_CANCELLABLE)).values(values)


def _time_windows(task_filter: TaskFilter) -> list[sa.ColumnElement[bool]]:
    """The filter's creation and finish windows, each [after, before)."""
    windows = []
    for column, after, before in (
        (tasks.c.created_at, task_filter.created_after, task_filter.created_before),
        (tasks.c.finished_at, task_filter.finished_after, task_filter.finished_before),
    ):
        if after is not None:
            windows.append(column >= after)
        if before is not None:
            windows.append(column < before)
    return windows


def _content(task_filter: TaskFilter) -> list[sa.ColumnElement[bool]]:
    """The filter's conditions on what no index holds (its last error's type, its payload):
    checked on the rows the listing order reads."""
    conditions: list[sa.ColumnElement[bool]] = []
    if task_filter.error_type:
        conditions.append(
            sa.exists().where(
                task_attempts.c.task_id == tasks.c.id,
                task_attempts.c.number == tasks.c.attempt,
                task_attempts.c.error_type == task_filter.error_type,
            )
        )
    if task_filter.payload_contains is not None:
        conditions.append(tasks.c.payload.contains(task_filter.payload_contains))
    return conditions


def _message(new: NewTask) -> TaskMessage:
    """The first attempt of a task just stored."""
    return TaskMessage(new.id, 1, new.timeout, new.queue, new.traceparent)


class PostgresTaskRepository:
    """Implements core.ports.TaskRepository on an async SQLAlchemy engine.

    With a publisher, a task stored ready into a queue that nothing holds back (running, no
    rate limit, no caps, no ready task before it, fewer than dispatch_ahead with the broker) is
    let through in the same transaction and published after the commit: no dispatcher pass
    between the commit and the broker. Its queue row is read under FOR SHARE, which a pause or
    a change of limits waits for (and the other way round), so that such a change either sees
    the task let through (a pause takes it back) or keeps it back. A publish that fails is the
    repair loop's, as for the dispatcher's. The queue row is shared, not held alone as a
    dispatcher holds it: api processes storing into one queue at the same instant may together
    go past dispatch_ahead by what each lets through then (the bound is on each of them).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        idempotency_window: timedelta,
        publisher: TaskPublisher | None = None,
        dispatch_ahead: int = 0,
        republish_after: timedelta = timedelta(seconds=30),
        on_let_through: Callable[[str, str, int], None] | None = None,
    ) -> None:
        """`on_let_through(tenant, queue, count)` hears of the tasks stored let through."""
        self._engine = engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._idempotency_window = idempotency_window
        self._publisher = publisher
        self._dispatch_ahead = dispatch_ahead if publisher is not None else 0
        self._republish_after = republish_after
        self._on_let_through = on_let_through
        self._group = GroupCommit(self._insert_group, most=GROUP_MOST, outage=StorageUnavailable)
        self._publishing: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(
        cls,
        engine: AsyncEngine,
        settings: Settings,
        publisher: TaskPublisher | None = None,
        on_let_through: Callable[[str, str, int], None] | None = None,
    ) -> PostgresTaskRepository:
        return cls(
            engine,
            timedelta(seconds=settings.idempotency_window_seconds),
            publisher,
            settings.dispatch_ahead,
            timedelta(seconds=settings.republish_after_seconds),
            on_let_through,
        )

    async def insert(self, new: NewTask) -> tuple[Task, bool]:
        """Stored by the next group commit: the calls of this process that arrive while one
        commits share the next transaction (see GroupCommit); a task with dependencies in a
        transaction of its own, which holds them."""
        if new.depends_on:
            return (await self.insert_many([new]))[0]
        return await self._group.submit(new)

    async def _insert_group(self, news: list[NewTask]) -> list[tuple[Task, bool] | Exception]:
        """Calls of any tenants, stored by one statement in autocommit (expired keys freed
        before it); then, for the calls it did not store, whether their queue is missing or
        which task an earlier call stored under their key."""
        results: list[tuple[Task, bool] | Exception] = []
        with storage_errors():
            async with self._autocommit.connect() as conn:
                keys = {(new.tenant, new.request_id) for new in news if new.request_id}
                if keys:
                    await conn.execute(self._release_expired_keys(keys))
                inserted, through = await self.store_in(conn, news)
                rest = [new for new in news if new.id not in inserted]
                missing = await missing_queues(conn, {(new.tenant, new.queue) for new in rest})
                existing = await self._with_keys(
                    conn,
                    {
                        (new.tenant, new.request_id)
                        for new in rest
                        if new.request_id and (new.tenant, new.queue) not in missing
                    },
                )
        self.publish_soon(through)  # the callers have their answer without waiting for it
        for new in news:
            if (new.tenant, new.queue) in missing:
                results.append(unknown_queue("queue", new.queue))
            elif new.id in inserted:
                results.append((inserted[new.id], True))
            elif (key := (new.tenant, new.request_id)) in existing:
                results.append((existing[key], False))
            else:  # the task of that key was deleted, or its key freed, since the INSERT
                results.append(StorageUnavailable("the request_id changed hands; call again"))
        return results

    async def store_in(
        self, conn: AsyncConnection, news: list[NewTask]
    ) -> tuple[dict[uuid.UUID, Task], _LetThrough]:
        """Inserts the tasks (those whose key is taken or whose queue is missing are skipped),
        letting through what may go straight to the broker; returns the tasks stored and what
        to publish."""
        if not news:
            return {}, _LetThrough([], {}, {})
        statement = _INSERT_DIRECT if self._dispatch_ahead else _INSERT
        parameters = _as_arrays([insert_values(new) for new in _in_key_order(news)]) | {
            "republish_after": self._republish_after,
            "ahead": self._dispatch_ahead,
        }
        driver = (await conn.get_raw_connection()).driver_connection
        assert isinstance(driver, psycopg.AsyncConnection)
        async with driver.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(statement.text, statement.parameters(parameters))
            rows = await cursor.fetchall()
        by_id = {new.id: new for new in news}
        inserted: dict[uuid.UUID, Task] = {}
        messages: list[TaskMessage] = []
        unclaimed: dict[tuple[str, str], int] = {}
        counts: dict[tuple[str, str], int] = {}
        for row in rows:
            inserted[row["id"]] = task_from_row(row)
            if row["dispatched_at"] is not None:
                messages.append(_message(by_id[row["id"]]))
                queue = (row["tenant"], row["queue"])
                unclaimed[queue] = row["unclaimed"]
                counts[queue] = counts.get(queue, 0) + 1
        backlog: dict[str, int] = {}
        for (_, name), count in unclaimed.items():
            backlog[name] = backlog.get(name, 0) + count
        return inserted, _LetThrough(messages, backlog, counts)

    def publish_soon(self, through: _LetThrough) -> None:
        if self._publisher is None or not through.messages:
            return
        if self._on_let_through is not None:
            for (tenant, queue), count in through.counts.items():
                self._on_let_through(tenant, queue, count)
        publishing = asyncio.get_running_loop().create_task(self._publish(through))
        self._publishing.add(publishing)  # held until done: the loop keeps weak references only
        publishing.add_done_callback(self._publishing.discard)

    async def _publish(self, through: _LetThrough) -> None:
        assert self._publisher is not None
        try:
            await self._publisher.publish_many(through.messages, through.backlog)
        except Exception as exc:  # stored and let through: the repair loop publishes them
            log.warning(
                "publishing %d tasks failed (%s); the repair loop will", len(through.messages), exc
            )

    async def _with_keys(
        self, conn: AsyncConnection, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], Task]:
        """The tasks stored under these (tenant, request_id) keys, with their attempts."""
        if not keys:
            return {}
        query = sa.select(tasks).where(
            sa.tuple_(tasks.c.tenant, tasks.c.request_id).in_(sorted(keys))
        )
        found = {}
        for row in (await conn.execute(query)).mappings().all():
            found[(row["tenant"], row["request_id"])] = await self._with_attempts(conn, row)
        return found

    async def insert_many(self, news: list[NewTask]) -> list[tuple[Task, bool]]:
        if not news:
            return []
        keys = [new.request_id for new in news if new.request_id]
        tenant = news[0].tenant
        with storage_errors():
            async with self._engine.begin() as conn:
                await hold_queues(conn, tenant, {new.queue for new in news})
                if keys:
                    await conn.execute(self._release_expired_keys({(tenant, k) for k in keys}))
                news = [await hold_dependencies(conn, new) for new in news]
                inserted, through = await self.store_in(conn, news)
                stored_news = [new for new in news if new.id in inserted]
                await insert_edges(conn, stored_news)
                await record_cancelled(conn, stored_news)
                missing = [new.request_id for new in news if new.id not in inserted]
                existing: dict[str, Task] = {}
                if missing:
                    same_keys = sa.select(tasks).where(
                        tasks.c.tenant == tenant, tasks.c.request_id.in_(missing)
                    )
                    for row in (await conn.execute(same_keys)).mappings():
                        existing[row["request_id"]] = task_from_row(row)
                # Raising inside the transaction rolls the whole batch back: all or none.
                stored = [_stored_or_existing(new, inserted, existing) for new in news]
        self.publish_soon(through)
        return stored

    def _release_expired_keys(self, keys: set[tuple[str, str]]) -> sa.Update:
        """Frees idempotency keys, (tenant, request_id), older than the window, so that they can
        name new tasks."""
        return (
            tasks.update()
            .where(
                sa.tuple_(tasks.c.tenant, tasks.c.request_id).in_(sorted(keys)),
                tasks.c.created_at < sa.func.now() - self._idempotency_window,
            )
            .values(request_id=None, request_fingerprint=None)
        )

    async def get(
        self, tenant: str, task_id: uuid.UUID, *, with_attempts: bool = True
    ) -> Task | None:
        with storage_errors():
            async with self._engine.connect() as conn:
                found = await conn.execute(_GET, {"task_id": task_id, "tenant": tenant})
                row = found.mappings().first()
                if row is None:
                    return None
                if not with_attempts:
                    return task_from_row(row)
                return await self._with_attempts(conn, row)

    async def list(
        self, tenant: str, task_filter: TaskFilter, page_size: int, after: PageCursor | None
    ) -> TaskPage:
        query = sa.select(tasks).where(tasks.c.tenant == tenant)
        if task_filter.kind:
            query = query.where(tasks.c.kind == task_filter.kind)
        if task_filter.queue:
            query = query.where(tasks.c.queue == task_filter.queue)
        if task_filter.schedule_id is not None:
            query = query.where(tasks.c.schedule_id == task_filter.schedule_id)
        if task_filter.workflow_id is not None:
            query = query.where(tasks.c.workflow_id == task_filter.workflow_id)
        query = query.where(*_time_windows(task_filter), *_content(task_filter))
        if task_filter.id_range is not None:
            low, high = task_filter.id_range
            query = query.where(tasks.c.id >= low)
            if high is not None:
                query = query.where(tasks.c.id < high)
        if after is not None:
            query = query.where(
                sa.tuple_(tasks.c.created_at, tasks.c.id) < (after.create_time, after.task_id)
            )
        statuses = sorted(status.value for status in task_filter.statuses)
        query = settled.newest_first(query, statuses, page_size + 1)
        with storage_errors():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).mappings().all()
        page = [task_from_row(row) for row in rows[:page_size]]
        has_more = len(rows) > page_size
        cursor = PageCursor(page[-1].create_time, page[-1].id) if has_more else None
        return TaskPage(page, cursor)

    async def count(self, tenant: str, finished_within: timedelta) -> dict[TaskStatus, int]:
        """One statement of scalar counts: each live status is read from the tenant's index by
        status (those in flight from the in-flight index), each finished one from the index of
        finish times, within the window (what it reads is bounded by the window, whatever the
        history)."""
        since = sa.func.now() - finished_within

        def counted(status: TaskStatus) -> sa.ColumnElement[int]:
            of_tenant = tasks.c.tenant == tenant
            if status.is_terminal:
                return (
                    sa.select(sa.func.count())
                    .where(of_tenant, tasks.c.status == status.value, tasks.c.finished_at >= since)
                    .scalar_subquery()
                )
            return settled.count(of_tenant, statuses=[status.value])

        statuses = list(TaskStatus)
        with storage_errors():
            async with self._engine.connect() as conn:
                row = (await conn.execute(sa.select(*map(counted, statuses)))).one()
        return dict(zip(statuses, row, strict=True))

    async def cancel(self, tenant: str, task_id: uuid.UUID) -> Task | None:
        statement = cancel_statement(tasks.c.id == task_id, tasks.c.tenant == tenant).returning(
            *tasks.c
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                # A BLOCKED step is locked by the ends of its dependencies after its workflow's
                # row: its cancel takes them in that order too, or the two would deadlock.
                await conn.execute(
                    _LOCK_WORKFLOW_OF_BLOCKED, {"task_id": task_id, "of_tenant": tenant}
                )
                row = (await conn.execute(statement)).mappings().first()
                if row is None:
                    return None
                return await self._with_attempts(conn, row)

    @staticmethod
    async def _with_attempts(conn: AsyncConnection, row: sa.RowMapping) -> Task:
        """The task with its attempts, and its dependencies when it had any."""
        attempts = (await conn.execute(_ATTEMPTS, {"task_id": row["id"]})).mappings().all()
        depends_on: list[uuid.UUID] = []
        if row["blocked_on"] is not None:
            depends_on = list((await conn.execute(_DEPENDS_ON, {"task_id": row["id"]})).scalars())
        return task_from_row(row, attempts, depends_on)


def _stored_or_existing(
    new: NewTask, inserted: dict[uuid.UUID, Task], existing: dict[str, Task]
) -> tuple[Task, bool]:
    if new.id in inserted:
        return inserted[new.id], True
    task = existing[new.request_id]
    if task.request_fingerprint != new.request_fingerprint:
        raise IdempotencyConflict(
            f"request_id {new.request_id!r} was already used for a different request"
        )
    return task, False
