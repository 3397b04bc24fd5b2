"""The fleet's storage: each worker process's row and heartbeat (sync, from the worker), the
listing with each process's state and running tasks, and the forgetting of old rows (async)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from taskscheduler.adapters.postgres.compiled import Compiled
from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.schema import tasks, workers
from taskscheduler.core.model import (
    LOST_AFTER_HEARTBEATS,
    TaskStatus,
    Worker,
    WorkerRegistration,
    WorkerState,
)

CONNECT_TIMEOUT_SECONDS = 5

_NOW = sa.func.now()
_REGISTERED = ("host", "pid", "celery_hostname", "parent", "queues", "concurrency", "version")


def _registered_values() -> dict[str, Any]:
    values: dict[str, Any] = {name: sa.bindparam(name) for name in _REGISTERED}
    values["heartbeat_seconds"] = sa.bindparam("heartbeat_seconds", type_=sa.Float())
    return values


_inserted = pg_insert(workers).values(
    name=sa.bindparam("worker_name"),
    started_at=_NOW,
    heartbeat_at=_NOW,
    stopped_at=sa.null(),
    **_registered_values(),
)
# A process of the same name again (a container's pid 1 after a restart) starts afresh.
_REGISTER = Compiled.of(
    _inserted.on_conflict_do_update(
        index_elements=[workers.c.name],
        set_={
            **{name: _inserted.excluded[name] for name in (*_REGISTERED, "heartbeat_seconds")},
            "started_at": _NOW,
            "heartbeat_at": _NOW,
            "stopped_at": sa.null(),
        },
    )
)
_BEAT = Compiled.of(
    workers.update()
    .where(workers.c.name == sa.bindparam("worker_name"))
    .values(heartbeat_at=_NOW)
    .returning(workers.c.name)
)
_STOPPED = Compiled.of(
    workers.update()
    .where(workers.c.name == sa.bindparam("worker_name"))
    .values(heartbeat_at=_NOW, stopped_at=_NOW)
)

# The state on the database's clock, the one every heartbeat was written with.
_LOST = workers.c.heartbeat_at < _NOW - sa.func.make_interval(
    0, 0, 0, 0, 0, 0, workers.c.heartbeat_seconds * LOST_AFTER_HEARTBEATS
)
WORKER_STATE = sa.case(
    (workers.c.stopped_at.isnot(None), WorkerState.STOPPED.value),
    (_LOST, WorkerState.LOST.value),
    else_=WorkerState.ONLINE.value,
)
"""A worker process's state now, judged on the database's clock."""
_STATE = WORKER_STATE.label("state")
_LIST = sa.select(workers, _STATE).order_by(
    workers.c.celery_hostname, workers.c.parent, workers.c.name
)
WORKERS_BY_STATE = sa.select(_STATE, sa.func.count()).group_by(_STATE)
"""(state, count) of the worker processes (the metrics read it at each scrape)."""
_RUNNING = sa.select(tasks.c.worker, tasks.c.id).where(
    tasks.c.status == TaskStatus.RUNNING.value, tasks.c.tenant == sa.bindparam("of_tenant")
)
_ANY_DRIVER_ERROR = (psycopg.Error,)


class PostgresWorkerRegistry:
    """Implements core.ports.WorkerRegistry on a connection per call: a beat every few seconds
    needs no pool, and nothing of it can cross the fork of a pool process."""

    def __init__(self, libpq_url: str) -> None:
        self._url = libpq_url

    def register(self, registration: WorkerRegistration) -> None:
        parameters = {name: getattr(registration, name) for name in _REGISTERED}
        parameters["queues"] = list(registration.queues)
        parameters["heartbeat_seconds"] = registration.heartbeat_seconds
        self._execute(_REGISTER, {"worker_name": registration.name} | parameters)

    def beat(self, name: str) -> bool:
        return self._execute(_BEAT, {"worker_name": name}) > 0

    def stopped(self, name: str) -> None:
        self._execute(_STOPPED, {"worker_name": name})

    def _execute(self, compiled: Compiled, parameters: dict[str, Any]) -> int:
        with (
            storage_errors(_ANY_DRIVER_ERROR),
            psycopg.connect(
                self._url, connect_timeout=CONNECT_TIMEOUT_SECONDS, autocommit=True
            ) as conn,
        ):
            return conn.execute(compiled.text, compiled.parameters(parameters)).rowcount


class PostgresWorkerRepository:
    """Implements core.ports.WorkerRepository on an async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def list(self, tenant: str) -> list[Worker]:
        with storage_errors():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(_LIST)).mappings().all()
                running = (await conn.execute(_RUNNING, {"of_tenant": tenant})).all()
        by_worker: dict[str, list[uuid.UUID]] = defaultdict(list)
        for worker_name, task_id in running:
            by_worker[worker_name].append(task_id)
        # A main process runs what its pool processes run.
        for row in rows:
            if row["parent"]:
                by_worker[row["parent"]].extend(by_worker.get(row["name"], ()))
        return [_worker_from_row(row, by_worker.get(row["name"], [])) for row in rows]

    async def forget(self, older_than: timedelta) -> int:
        since = _NOW - older_than
        gone = sa.or_(workers.c.stopped_at < since, workers.c.heartbeat_at < since)
        with storage_errors():
            async with self._engine.begin() as conn:
                result = await conn.execute(workers.delete().where(gone))
        return int(result.rowcount)


def _worker_from_row(row: sa.RowMapping, running: list[uuid.UUID]) -> Worker:
    registration = WorkerRegistration(
        name=row["name"],
        host=row["host"],
        pid=row["pid"],
        celery_hostname=row["celery_hostname"],
        queues=tuple(row["queues"]),
        concurrency=row["concurrency"],
        version=row["version"],
        heartbeat_seconds=row["heartbeat_seconds"],
        parent=row["parent"],
    )
    return Worker(
        registration=registration,
        state=WorkerState(row["state"]),
        start_time=row["started_at"],
        heartbeat_time=row["heartbeat_at"],
        stop_time=row["stopped_at"],
        running_task_ids=tuple(sorted(running, key=str)),
    )
