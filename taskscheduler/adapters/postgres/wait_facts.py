"""What ExplainTask reads (async): a task, its unfinished dependencies, its queue's limits and
what holds the queue's slots, its place among the queue's ready tasks, the workers serving it."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.schema import (
    IN_FLIGHT,
    READY,
    queues,
    task_dependencies,
    tasks,
    workers,
)
from taskscheduler.adapters.postgres.workers import WORKER_STATE
from taskscheduler.core.model import QueueState, TaskStatus, WorkerState
from taskscheduler.core.ports import WaitFacts
from taskscheduler.core.queues import bucket_level

_TASK = sa.select(
    tasks.c.id,
    tasks.c.status,
    tasks.c.attempt,
    tasks.c.max_attempts,
    tasks.c.run_at,
    tasks.c.created_at,
    tasks.c.priority,
    tasks.c.queue,
    tasks.c.concurrency_key,
    tasks.c.dispatched_at,
    tasks.c.worker,
    tasks.c.lease_expires_at,
    tasks.c.error,
    sa.func.now().label("now"),
).where(tasks.c.tenant == sa.bindparam("of_tenant"), tasks.c.id == sa.bindparam("the_task"))

_UNFINISHED_DEPENDENCIES = (
    sa.select(task_dependencies.c.depends_on)
    .join(tasks, tasks.c.id == task_dependencies.c.depends_on)
    .where(
        task_dependencies.c.task_id == sa.bindparam("the_task"),
        tasks.c.status != TaskStatus.SUCCESS.value,
    )
    .order_by(task_dependencies.c.depends_on)
)

_QUEUE = sa.select(queues).where(
    queues.c.tenant == sa.bindparam("of_tenant"), queues.c.name == sa.bindparam("queue_name")
)

_OF_QUEUE = (
    tasks.c.tenant == sa.bindparam("of_tenant"),
    tasks.c.queue == sa.bindparam("queue_name"),
)
_SLOTS = sa.select(
    sa.func.count(),
    sa.func.count().filter(tasks.c.status == TaskStatus.PENDING.value),
    sa.func.count().filter(tasks.c.concurrency_key == sa.bindparam("key")),
).where(*_OF_QUEUE, IN_FLIGHT)

# The ready tasks the dispatchers let through before this one (ix_tasks_ready's order).
_PRIORITY, _RUN_AT, _CREATED = (
    sa.bindparam("priority", type_=sa.SmallInteger()),
    sa.bindparam("run_at", type_=sa.DateTime(timezone=True)),
    sa.bindparam("created_at", type_=sa.DateTime(timezone=True)),
)
_READY_AHEAD = sa.select(sa.func.count()).where(
    *_OF_QUEUE,
    READY,
    sa.or_(
        tasks.c.priority > _PRIORITY,
        sa.and_(
            tasks.c.priority == _PRIORITY,
            sa.tuple_(tasks.c.run_at, tasks.c.created_at) < sa.tuple_(_RUN_AT, _CREATED),
        ),
    ),
)

_SERVING_WORKERS = sa.select(sa.func.count()).where(
    WORKER_STATE == WorkerState.ONLINE.value,  # noqa: SIM300 (an SQL expression, not a constant)
    sa.or_(
        sa.func.cardinality(workers.c.queues) == 0,
        sa.bindparam("queue_name") == sa.any_(workers.c.queues),
    ),
)


class PostgresWaitFacts:
    """Implements core.ports.WaitFactsReader on an async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def read(self, tenant: str, task_id: uuid.UUID) -> WaitFacts | None:
        with storage_errors():
            async with self._engine.connect() as conn:
                task = (
                    (await conn.execute(_TASK, {"of_tenant": tenant, "the_task": task_id}))
                    .mappings()
                    .one_or_none()
                )
                if task is None:
                    return None
                return await _facts(conn, tenant, task)


async def _facts(conn: AsyncConnection, tenant: str, task: sa.RowMapping) -> WaitFacts:
    of_queue = {"of_tenant": tenant, "queue_name": task["queue"]}
    dependencies: list[uuid.UUID] = []
    if task["status"] == TaskStatus.BLOCKED.value:
        found = await conn.execute(_UNFINISHED_DEPENDENCIES, {"the_task": task["id"]})
        dependencies = list(found.scalars())
    queue = (await conn.execute(_QUEUE, of_queue)).mappings().one_or_none()
    slots = await conn.execute(_SLOTS, of_queue | {"key": task["concurrency_key"]})
    in_flight, unclaimed, key_in_flight = slots.one()
    ready_ahead = 0
    if task["status"] == TaskStatus.PENDING.value and task["dispatched_at"] is None:
        order = {name: task[name] for name in ("priority", "run_at", "created_at")}
        ready_ahead = (await conn.execute(_READY_AHEAD, of_queue | order)).scalar_one()
    serving = (await conn.execute(_SERVING_WORKERS, of_queue)).scalar_one()
    return WaitFacts(
        now=task["now"],
        task_id=task["id"],
        status=TaskStatus(task["status"]),
        attempt=task["attempt"],
        max_attempts=task["max_attempts"],
        run_at=task["run_at"],
        queue=task["queue"],
        concurrency_key=task["concurrency_key"] or "",
        dispatched_at=task["dispatched_at"],
        worker=task["worker"],
        lease_expires_at=task["lease_expires_at"],
        last_error=task["error"] or "",
        unfinished_dependencies=tuple(dependencies),
        serving_workers=serving,
        in_flight=in_flight,
        unclaimed=unclaimed,
        key_in_flight=key_in_flight if task["concurrency_key"] else 0,
        ready_ahead=ready_ahead,
        **_queue_facts(queue, task["now"]),
    )


def _queue_facts(queue: sa.RowMapping | None, now: Any) -> dict[str, Any]:
    """A queue not created yet (the default one, before its first task) holds nothing back."""
    if queue is None:
        return {
            "queue_state": None,
            "rate_per_second": None,
            "tokens": None,
            "max_concurrent": 0,
            "max_concurrent_per_key": 0,
        }
    rate = queue["rate_per_second"]
    tokens = None
    if rate is not None:
        tokens = bucket_level(queue["tokens"], queue["tokens_at"], rate, queue["rate_burst"], now)
    return {
        "queue_state": QueueState(queue["state"]),
        "rate_per_second": rate,
        "tokens": tokens,
        "max_concurrent": queue["max_concurrent"] or 0,
        "max_concurrent_per_key": queue["max_concurrent_per_key"] or 0,
    }
