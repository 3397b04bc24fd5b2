"""The dispatcher's storage: promote due timers to PENDING, let ready tasks through their
queues (pause, rate limit, concurrency caps, priority), re-publish what may be lost."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.schema import (
    FINISHED,
    IN_FLIGHT,
    READY,
    WAITING_FOR_TIMER,
    queues,
    schedules,
    tasks,
    workflows,
)
from taskscheduler.core.model import HeldBackBy, QueueState, TaskStatus
from taskscheduler.core.ports import TaskMessage
from taskscheduler.core.queues import bucket_level
from taskscheduler.settings import Settings

_MESSAGE_COLUMNS = (
    tasks.c.id,
    tasks.c.attempt,
    tasks.c.timeout_seconds,
    tasks.c.queue,
    tasks.c.traceparent,
)

QUEUES_PER_PASS = 20
"""Queues one pass holds at most: other dispatchers take the next ones meanwhile."""

_OPEN_QUEUES = (
    sa.select(queues, sa.func.now().label("now"))
    .where(
        queues.c.state == QueueState.RUNNING.value,
        sa.exists().where(tasks.c.tenant == queues.c.tenant, tasks.c.queue == queues.c.name, READY),
    )
    .order_by(queues.c.tokens_at)
    .limit(QUEUES_PER_PASS)
    # NO KEY UPDATE: a pause waits for the pass, a task being stored into the queue does not
    # (KEY SHARE); while the api lets a task through the queue (FOR SHARE) the pass skips the
    # queue, and the commit's NOTIFY brings the next pass.
    .with_for_update(of=queues, skip_locked=True, key_share=True)
)
"""Queues that are not paused and have ready tasks, the longest unserved first, each held by one
dispatcher at a time: what it counts and takes from a queue cannot change under it, and a pause
waits for it."""


@dataclass(frozen=True)
class QueuePass:
    """What one dispatch pass did with one queue."""

    tenant: str
    queue: str
    dispatched: int
    held_back_by: HeldBackBy | None = None
    """The limit that kept back ready tasks of the queue; None when none did."""
    unclaimed: int = 0
    """Tasks of the queue already with the broker, not yet claimed, before this pass."""


@dataclass(frozen=True)
class DispatchPass:
    messages: list[TaskMessage]
    queues: list[QueuePass]
    next_token_in: float | None
    """Seconds until a rate-limited queue has a token again; None when none waits for one."""
    held_back_by: frozenset[HeldBackBy]
    """The caps that kept ready tasks back (CONCURRENCY: max_concurrent or per key, freed as
    tasks end; DISPATCH_AHEAD: freed as workers claim); never RATE, whose wait is
    next_token_in."""
    more_queues: bool
    """The pass held as many queues as it may: others may have ready tasks too."""


class PostgresDueTasks:
    def __init__(
        self,
        engine: AsyncEngine,
        republish_after: timedelta,
        republish_max: timedelta,
        dispatch_ahead: int,
    ) -> None:
        self._engine = engine
        self._republish_after = republish_after
        self._republish_max = republish_max
        self._dispatch_ahead = dispatch_ahead

    @classmethod
    def from_settings(cls, engine: AsyncEngine, settings: Settings) -> PostgresDueTasks:
        return cls(
            engine,
            republish_after=timedelta(seconds=settings.republish_after_seconds),
            republish_max=timedelta(seconds=settings.republish_max_seconds),
            dispatch_ahead=settings.dispatch_ahead,
        )

    async def promote_due(self, limit: int) -> int:
        """Claims up to `limit` due SCHEDULED or RETRYING rows (SKIP LOCKED: dispatchers never
        take the same row) and makes them PENDING, ready for their queue."""
        due = _claimable(
            sa.and_(tasks.c.status.in_(WAITING_FOR_TIMER), tasks.c.run_at <= sa.func.now()),
            tasks.c.run_at,
            limit,
        )
        statement = (
            tasks.update()
            .where(tasks.c.id.in_(due))
            .values(
                status=TaskStatus.PENDING.value,
                updated_at=sa.func.now(),
                dispatched_at=None,
                republish_at=None,
                publish_count=0,
            )
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                return int((await conn.execute(statement)).rowcount)

    async def dispatch_ready(self, limit: int) -> DispatchPass:
        """Lets up to `limit` ready tasks through the queues that are open, each within its
        rate limit, its concurrency caps and the dispatch-ahead bound, by priority."""
        messages: list[TaskMessage] = []
        passes: list[QueuePass] = []
        next_token_in: float | None = None
        with storage_errors():
            async with self._engine.begin() as conn:
                for queue in (await conn.execute(_OPEN_QUEUES)).mappings().all():
                    if len(messages) >= limit:
                        break
                    taken, capped_by, wait, unclaimed = await self._dispatch_queue(
                        conn, queue, limit - len(messages)
                    )
                    messages += taken
                    passes.append(
                        QueuePass(queue["tenant"], queue["name"], len(taken), capped_by, unclaimed)
                    )
                    if wait is not None:
                        next_token_in = wait if next_token_in is None else min(next_token_in, wait)
        caps = frozenset(
            queue_pass.held_back_by
            for queue_pass in passes
            if queue_pass.held_back_by not in (None, HeldBackBy.RATE)
        )
        more_queues = len(passes) == QUEUES_PER_PASS
        return DispatchPass(messages, passes, next_token_in, caps, more_queues)

    async def _dispatch_queue(
        self, conn: AsyncConnection, queue: sa.RowMapping, limit: int
    ) -> tuple[list[TaskMessage], HeldBackBy | None, float | None, int]:
        of_queue = (tasks.c.tenant == queue["tenant"], tasks.c.queue == queue["name"])
        budget = limit
        tokens = _tokens(queue)
        if tokens is not None:
            if tokens < 1:
                return [], HeldBackBy.RATE, (1 - tokens) / queue["rate_per_second"], 0
            budget = min(budget, int(tokens))
        in_flight = sa.select(
            sa.func.count(),
            sa.func.count().filter(tasks.c.status == TaskStatus.PENDING.value),
        ).where(*of_queue, IN_FLIGHT)
        holding, unclaimed = (await conn.execute(in_flight)).one()
        capped_by: HeldBackBy | None = None
        if self._dispatch_ahead - unclaimed < budget:
            budget, capped_by = self._dispatch_ahead - unclaimed, HeldBackBy.DISPATCH_AHEAD
        if queue["max_concurrent"] and queue["max_concurrent"] - holding < budget:
            budget, capped_by = queue["max_concurrent"] - holding, HeldBackBy.CONCURRENCY
        if budget <= 0:
            return [], capped_by, None, unclaimed
        per_key = queue["max_concurrent_per_key"]
        statement = (
            tasks.update()
            .where(
                _chosen_by_key(of_queue, per_key, budget) if per_key else _chosen(of_queue, budget)
            )
            .values(
                dispatched_at=sa.func.now(),
                republish_at=sa.func.now() + self._republish_after,
                publish_count=0,
            )
            .returning(*_MESSAGE_COLUMNS)
        )
        taken = [_message(row) for row in (await conn.execute(statement)).mappings()]
        if taken:
            # The bucket's new level; its time also orders the queues of the next pass, the
            # longest unserved first.
            left = queue["tokens"] if tokens is None else tokens - len(taken)
            await conn.execute(
                queues.update()
                .where(queues.c.tenant == queue["tenant"], queues.c.name == queue["name"])
                .values(tokens=left, tokens_at=queue["now"])
            )
        if per_key and len(taken) < budget:
            more_ready = sa.select(sa.exists().where(*of_queue, READY))
            if (await conn.execute(more_ready)).scalar():
                return taken, HeldBackBy.CONCURRENCY, None, unclaimed
        if len(taken) < budget:
            return taken, None, None, unclaimed
        if capped_by is not None:
            return taken, capped_by, None, unclaimed
        if tokens is not None and int(tokens) == budget:  # the bucket ran dry, not the queue
            wait = (1 - (tokens - len(taken))) / queue["rate_per_second"]
            return taken, HeldBackBy.RATE, wait, unclaimed
        return taken, None, None, unclaimed

    async def republish_lost(self, limit: int) -> list[TaskMessage]:
        """PENDING rows that no worker claimed by their republish time: their message may be
        lost, so they go out again, each time after twice the wait (up to republish_max)."""
        lost = _claimable(UNCLAIMED_TOO_LONG, tasks.c.republish_at, limit)
        backoff_seconds = sa.func.least(
            self._republish_after.total_seconds() * sa.func.power(2, tasks.c.publish_count + 1),
            self._republish_max.total_seconds(),
        )
        statement = (
            tasks.update()
            .where(tasks.c.id.in_(lost))
            .values(
                republish_at=sa.func.now()
                + sa.func.make_interval(0, 0, 0, 0, 0, 0, backoff_seconds),
                publish_count=tasks.c.publish_count + 1,
            )
            .returning(*_MESSAGE_COLUMNS)
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                rows = (await conn.execute(statement)).mappings().all()
        return [_message(row) for row in rows]

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
        # A workflow goes with its last steps: it finished when they did.
        ended = (
            sa.select(workflows.c.id)
            .where(workflows.c.finished_at < sa.func.now() - older_than)
            .order_by(workflows.c.finished_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with storage_errors():
            async with self._engine.begin() as conn:
                result = await conn.execute(tasks.delete().where(tasks.c.id.in_(finished)))
                await conn.execute(workflows.delete().where(workflows.c.id.in_(ended)))
        return int(result.rowcount)

    async def next_times(self) -> tuple[datetime | None, datetime | None, bool]:
        """The next due timer (SCHEDULED or RETRYING), the next fire of a schedule not paused,
        and whether a schedule keeps a fire for when its running task ends (BUFFER_ONE), in
        one round trip."""
        next_timer = (
            sa.select(sa.func.min(tasks.c.run_at))
            .where(tasks.c.status.in_(WAITING_FOR_TIMER))
            .scalar_subquery()
        )
        next_fire = (
            sa.select(sa.func.min(schedules.c.next_fire_at))
            .where(sa.not_(schedules.c.paused))
            .scalar_subquery()
        )
        buffered = sa.exists().where(schedules.c.buffered_fire_at.isnot(None))
        with storage_errors():
            async with self._engine.connect() as conn:
                row = (await conn.execute(sa.select(next_timer, next_fire, buffered))).one()
        return row[0], row[1], bool(row[2])


def _message(row: sa.RowMapping) -> TaskMessage:
    seconds = row["timeout_seconds"]
    return TaskMessage(
        task_id=row["id"],
        attempt=row["attempt"] + 1,
        timeout=None if seconds is None else timedelta(seconds=seconds),
        queue=row["queue"],
        traceparent=row["traceparent"] or "",
    )


def _tokens(queue: sa.RowMapping) -> float | None:
    """The tokens in a rate-limited queue's bucket now; None when the queue has no limit."""
    rate = queue["rate_per_second"]
    if rate is None:
        return None
    return bucket_level(
        queue["tokens"], queue["tokens_at"], rate, queue["rate_burst"], queue["now"]
    )


# Dispatched, and no worker has claimed it by its republish time (ix_tasks_republish_at).
UNCLAIMED_TOO_LONG = sa.and_(
    tasks.c.status == TaskStatus.PENDING.value,
    tasks.c.dispatched_at.isnot(None),
    tasks.c.republish_at <= sa.func.now(),
)

_DISPATCH_ORDER = (tasks.c.priority.desc(), tasks.c.run_at, tasks.c.created_at)


def _next_in_order(of_queue: tuple[sa.ColumnElement[bool], ...]) -> sa.Select[Any]:
    """Ready tasks of the queue by priority, then due time, then age (the ready index)."""
    return sa.select(tasks.c.id).where(*of_queue, READY).order_by(*_DISPATCH_ORDER)


def _chosen(of_queue: tuple[sa.ColumnElement[bool], ...], budget: int) -> sa.ColumnElement[bool]:
    """The first `budget` ready tasks of the queue, locked (SKIP LOCKED rechecks that each is
    still ready), matched by primary key: a condition on readiness beside it would have the
    planner read every entry of the ready index on each pass."""
    locked = _next_in_order(of_queue).limit(budget).with_for_update(skip_locked=True)
    return tasks.c.id == sa.any_(sa.func.array(locked.scalar_subquery()))


def _chosen_by_key(
    of_queue: tuple[sa.ColumnElement[bool], ...], per_key: int, budget: int
) -> sa.ColumnElement[bool]:
    """The round robin reads every ready task of the queue anyway (its ranks), and cannot lock
    them (window functions): readiness is checked again on the rows it picks."""
    picked = _next_by_key(of_queue, per_key).limit(budget).scalar_subquery()
    return sa.and_(tasks.c.id.in_(picked), READY)


def _next_by_key(of_queue: tuple[sa.ColumnElement[bool], ...], per_key: int) -> sa.Select[Any]:
    """Ready tasks of the queue whose key has a free slot, round robin: each key's next task
    before any key's second one (keys with fewer tasks in flight first), by priority within a
    key. Tasks without a key are one group of their own, never capped."""
    holding = (
        sa.select(tasks.c.concurrency_key, sa.func.count().label("holding"))
        .where(*of_queue, IN_FLIGHT, tasks.c.concurrency_key.isnot(None))
        .group_by(tasks.c.concurrency_key)
        .subquery("holding")
    )
    ranked = (
        sa.select(
            tasks.c.id,
            tasks.c.concurrency_key,
            tasks.c.priority,
            tasks.c.run_at,
            tasks.c.created_at,
            sa.func.row_number()
            .over(partition_by=tasks.c.concurrency_key, order_by=_DISPATCH_ORDER)
            .label("rank"),
        )
        .where(*of_queue, READY)
        .subquery("ranked")
    )
    turn = ranked.c.rank + sa.func.coalesce(holding.c.holding, 0)
    return (
        sa.select(ranked.c.id)
        .select_from(
            ranked.outerjoin(holding, ranked.c.concurrency_key == holding.c.concurrency_key)
        )
        .where(sa.or_(ranked.c.concurrency_key.is_(None), turn <= per_key))
        .order_by(turn, ranked.c.priority.desc(), ranked.c.run_at, ranked.c.created_at)
    )


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
