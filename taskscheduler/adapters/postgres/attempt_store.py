"""The worker's storage (sync): claim an attempt and record its outcome, fenced by attempt.

Each statement is compiled once (see compiled.py) and run on a psycopg connection of its own
pool in autocommit: a Connection of SQLAlchemy's per statement (checkout, isolation level set
and reset, result metadata) cost the pool process more CPU than the statements' round trips
(py-spy, 72% of its Python time in an end-to-end run)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from taskscheduler.adapters.postgres.compiled import Compiled
from taskscheduler.adapters.postgres.engine import connection_options, storage_errors
from taskscheduler.adapters.postgres.rows import (
    INSERTED_COLUMNS,
    claimed_from_row,
    expired_from_row,
    insert_values,
    progress_value,
    queue_from_row,
)
from taskscheduler.adapters.postgres.schema import (
    PROGRESS_CHANNEL,
    queues,
    task_attempts,
    task_dependencies,
    tasks,
    workflows,
)
from taskscheduler.core.model import JSON, NewTask, Progress, QueueSettings, TaskStatus
from taskscheduler.core.ports import (
    AttemptEnd,
    AttemptError,
    ClaimedAttempt,
    ExpiredAttempt,
    Lease,
)
from taskscheduler.settings import Settings

S = TaskStatus
_CANCEL_REQUESTED = tasks.c.cancel_requested_at.isnot(None)


# The fence: only the worker running this very attempt may change the row.
_THIS_ATTEMPT = (
    tasks.c.id == sa.bindparam("the_task"),
    tasks.c.status == S.RUNNING.value,
    tasks.c.attempt == sa.bindparam("the_attempt"),
)


# What a claim reads back (claimed_from_row, the attempt's row, the two CASEs below): not the
# whole row, so that the statement with an end beside it stays short enough for psycopg's cache.
_CLAIMED_COLUMNS = (
    "id",
    "tenant",
    "kind",
    "payload",
    "attempt",
    "max_attempts",
    "initial_backoff_seconds",
    "max_backoff_seconds",
    "backoff_multiplier",
    "jitter",
    "timeout_seconds",
    "run_at",
    "created_at",
    "started_at",
    "worker",
    "workflow_id",
    "step_name",
    "blocked_on",
    "has_dependents",
)


def _claim_statement(
    task_parameter: str = "the_task", chosen: sa.ColumnElement[Any] | None = None
) -> sa.Select[Any]:
    """PENDING -> RUNNING with a lease, and the attempt's row, in one statement: the task named
    by `task_parameter`, let through its queue already; or the one `chosen` selects, which the
    claim lets through itself (a released dependent, see _released_dependent)."""
    now = sa.func.now()
    # A task its queue has not let through (or took back: a pause) is not to run yet, whatever
    # message of its the broker delivers.
    through: sa.ColumnElement[bool] = tasks.c.dispatched_at.isnot(None)
    values: dict[str, Any] = {}
    if chosen is not None:
        through = tasks.c.dispatched_at.is_(None)
        values["dispatched_at"] = now
    claimed = (
        tasks.update()
        .where(
            tasks.c.id == (sa.bindparam(task_parameter) if chosen is None else chosen),
            tasks.c.status == S.PENDING.value,
            through,
            tasks.c.attempt < tasks.c.max_attempts,
        )
        .values(
            status=S.RUNNING.value,
            attempt=tasks.c.attempt + 1,
            started_at=now,
            updated_at=now,
            worker=sa.bindparam("claim_worker"),
            lease_expires_at=now + sa.bindparam("lease", type_=sa.Interval()),
            **values,
        )
        .returning(*(tasks.c[name] for name in _CLAIMED_COLUMNS))
        .cte("claimed")
    )
    recorded = (
        task_attempts.insert()
        .from_select(
            ["task_id", "number", "status", "worker", "started_at"],
            sa.select(
                claimed.c.id,
                claimed.c.attempt,
                sa.literal(S.RUNNING.value),
                claimed.c.worker,
                claimed.c.started_at,
            ),
        )
        .cte("recorded")
    )
    parent = tasks.alias("parent")
    results = (
        sa.select(
            sa.func.jsonb_object_agg(
                sa.func.coalesce(parent.c.step_name, sa.cast(parent.c.id, sa.Text)), parent.c.result
            )
        )
        .select_from(task_dependencies.join(parent, parent.c.id == task_dependencies.c.depends_on))
        .where(task_dependencies.c.task_id == claimed.c.id)
        .scalar_subquery()
    )
    # Evaluated only for a task that had dependencies (a subquery in a CASE branch runs when
    # the branch is taken): the others pay nothing for it.
    dependency_results = sa.case((claimed.c.blocked_on.isnot(None), results), else_=sa.null())
    # Whether a dependent depends on this task alone (a chain's next step: this task's success
    # releases it), from the edges only, read only for a task with dependents as above. Never
    # the dependent's row: a fan-in's is rewritten by every parent's end, and each read would
    # walk its versions.
    edge, other = task_dependencies.alias("edge"), task_dependencies.alias("other")
    waits_alone = sa.exists().where(
        edge.c.depends_on == claimed.c.id,
        sa.not_(
            sa.exists().where(
                other.c.task_id == edge.c.task_id, other.c.depends_on != edge.c.depends_on
            )
        ),
    )
    releases_alone = sa.case((claimed.c.has_dependents, waits_alone), else_=sa.false())
    return sa.select(
        claimed,
        dependency_results.label("dependency_results"),
        releases_alone.label("releases_alone"),
    ).add_cte(recorded)


def _finish_statement(values: dict[str, Any], guards: list[sa.ColumnElement[bool]]) -> sa.Update:
    """RUNNING -> a final or retry status for exactly this attempt (the fence), and its attempt
    row: SUCCESS or CANCELLED with the task, else FAILED (the task may be RETRYING)."""
    finished = (
        tasks.update()
        .where(*_THIS_ATTEMPT, *guards)
        .values(updated_at=sa.func.now(), **values)
        .returning(tasks.c.id, tasks.c.status, tasks.c.updated_at)
        .cte("finished")
    )
    recorded_status = sa.case(
        (
            sa.or_(finished.c.status == S.SUCCESS.value, finished.c.status == S.CANCELLED.value),
            finished.c.status,
        ),
        else_=S.FAILED.value,
    )
    return (
        task_attempts.update()
        .where(
            task_attempts.c.task_id == finished.c.id,
            task_attempts.c.number == sa.bindparam("the_attempt"),
        )
        .values(
            status=recorded_status,
            finished_at=finished.c.updated_at,
            error_type=sa.bindparam("error_type", type_=sa.Text()),
            error_message=sa.bindparam("error_message", type_=sa.Text()),
            traceback=sa.bindparam("error_traceback", type_=sa.Text()),
        )
        .returning(task_attempts.c.task_id)
    )


_CLAIM = _claim_statement()
_SUCCEED = _finish_statement(
    {
        "status": sa.case((_CANCEL_REQUESTED, S.CANCELLED.value), else_=S.SUCCESS.value),
        "result": sa.case(
            (_CANCEL_REQUESTED, sa.null()),
            else_=sa.bindparam("result_value", type_=tasks.c.result.type),
        ),
        "error": None,
        "finished_at": sa.func.now(),
    },
    guards=[],
)
_RENEW = (
    tasks.update()
    .where(*_THIS_ATTEMPT)
    .values(lease_expires_at=sa.func.now() + sa.bindparam("lease", type_=sa.Interval()))
    .returning(tasks.c.cancel_requested_at)
)
_NO_ERROR = {"error_type": None, "error_message": None, "error_traceback": None}
_EXPIRED = (
    sa.select(tasks)
    .where(tasks.c.status == S.RUNNING.value, tasks.c.lease_expires_at < sa.func.now())
    .order_by(tasks.c.lease_expires_at)
    .limit(sa.bindparam("most", type_=sa.Integer()))
)


def _released_dependent() -> sa.ScalarSelect[Any]:
    """A dependent of the task `the_parent` that its end released (PENDING, not let through)
    and that its queue would let through at once: the queue runs, has no rate limit and no
    caps, nothing of it waits at the broker, and the dependent is first in its dispatch order;
    among the queues `served` (empty: any). Locked, or skipped when a dispatcher holds it."""
    child, ready, held = tasks.alias("child"), tasks.alias("ready"), tasks.alias("held")
    same_queue = (ready.c.tenant == child.c.tenant, ready.c.queue == child.c.queue)
    first_ready = (
        sa.select(ready.c.id)
        .where(*same_queue, ready.c.status == S.PENDING.value, ready.c.dispatched_at.is_(None))
        .order_by(ready.c.priority.desc(), ready.c.run_at, ready.c.created_at)
        .limit(1)
        .scalar_subquery()
    )
    at_broker = sa.exists().where(
        held.c.tenant == child.c.tenant,
        held.c.queue == child.c.queue,
        held.c.status == S.PENDING.value,
        held.c.dispatched_at.isnot(None),
    )
    served = sa.bindparam("served", type_=ARRAY(sa.Text()))
    return (
        sa.select(child.c.id)
        .select_from(
            task_dependencies.join(child, child.c.id == task_dependencies.c.task_id).join(
                queues, sa.and_(queues.c.tenant == child.c.tenant, queues.c.name == child.c.queue)
            )
        )
        .where(
            task_dependencies.c.depends_on == sa.bindparam("the_parent"),
            child.c.status == S.PENDING.value,
            child.c.dispatched_at.is_(None),
            child.c.run_at <= sa.func.now(),
            sa.or_(sa.func.cardinality(served) == 0, child.c.queue == sa.func.any(served)),
            queues.c.state == "RUNNING",
            queues.c.rate_per_second.is_(None),
            queues.c.max_concurrent.is_(None),
            queues.c.max_concurrent_per_key.is_(None),
            child.c.id == first_ready,
            sa.not_(at_broker),
        )
        .order_by(child.c.priority.desc())
        .limit(1)
        # A pause committed meanwhile finds the dependent RUNNING, as one claimed just before
        # it: running tasks go on through a pause.
        .with_for_update(of=[child], skip_locked=True)
        .scalar_subquery()
    )


_HOLD = (
    sa.select(tasks.c.workflow_id, tasks.c.cancel_requested_at)
    .where(*_THIS_ATTEMPT)
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE, as the success's UPDATE takes it
)
_INSERT_STEP = tasks.insert().values({name: sa.bindparam(name) for name in INSERTED_COLUMNS})
_EDGE = task_dependencies.insert().values(
    task_id=sa.bindparam("child"), depends_on=sa.bindparam("parent")
)
_GROW = (
    workflows.update()
    .where(workflows.c.id == sa.bindparam("the_workflow"))
    .values(
        steps=workflows.c.steps + sa.bindparam("more", type_=sa.Integer()),
        unfinished=workflows.c.unfinished + sa.bindparam("more", type_=sa.Integer()),
        updated_at=sa.func.now(),
    )
)
_QUEUE = sa.select(queues).where(
    queues.c.tenant == sa.bindparam("of_tenant"), queues.c.name == sa.bindparam("queue_name")
)
_HOLD_SQL = Compiled.of(_HOLD)
_INSERT_STEP_SQL = Compiled.of(_INSERT_STEP)
_EDGE_SQL = Compiled.of(_EDGE)
_GROW_SQL = Compiled.of(_GROW)
# The progress of exactly this attempt, and its announcement in the same transaction: a
# subscriber never hears of a report that did not commit.
_REPORTED = (
    tasks.update()
    .where(*_THIS_ATTEMPT)
    .values(progress=sa.bindparam("progress_value", type_=JSONB), progress_at=sa.func.now())
    .returning(tasks.c.id, tasks.c.attempt, tasks.c.progress, tasks.c.progress_at)
    .cte("reported")
)
_PROGRESS = sa.select(
    sa.func.pg_notify(
        PROGRESS_CHANNEL,
        sa.cast(
            sa.func.json_build_object(
                "id",
                _REPORTED.c.id,
                "attempt",
                _REPORTED.c.attempt,
                "progress",
                _REPORTED.c.progress,
                "time",
                _REPORTED.c.progress_at,
            ),
            sa.Text,
        ),
    )
).select_from(_REPORTED)

_QUEUE_SQL = Compiled.of(_QUEUE)
_PROGRESS_SQL = Compiled.of(_PROGRESS)
_CLAIM_SQL = Compiled.of(_CLAIM)
_CLAIM_RELEASED_SQL = Compiled.of(_claim_statement(chosen=_released_dependent()))
_SUCCEED_SQL = Compiled.of(_SUCCEED)
_RENEW_SQL = Compiled.of(_RENEW)
_EXPIRED_SQL = Compiled.of(_EXPIRED)


def connection_pool(settings: Settings, size: int = 2) -> ConnectionPool:
    """Autocommit connections for an attempt store, opened in the background (a database
    that is down at start makes calls fail with StorageUnavailable until it is back)."""
    return ConnectionPool(
        settings.libpq_url,
        min_size=1,
        max_size=size,
        timeout=settings.db_connect_timeout_seconds,
        kwargs={"autocommit": True, **connection_options(settings)},
        open=True,
        name="attempt-store",
    )


class PostgresAttemptStore:
    """Implements core.ports.AttemptStore; each method is one statement (CTEs), its own
    transaction (autocommit: BEGIN and COMMIT would only add two round trips)."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    @classmethod
    def from_settings(cls, settings: Settings, size: int = 2) -> PostgresAttemptStore:
        return cls(connection_pool(settings, size))

    def close(self) -> None:
        self._pool.close()

    def claim(self, task_id: uuid.UUID, worker: str, lease: timedelta) -> ClaimedAttempt | None:
        parameters = {"the_task": task_id, "claim_worker": worker, "lease": lease}
        row = self._execute(_CLAIM_SQL, parameters)
        return None if row is None else claimed_from_row(row)

    def succeed(
        self, task_id: uuid.UUID, attempt: int, result: JSON, spawned: tuple[NewTask, ...] = ()
    ) -> bool:
        end = AttemptEnd(task_id, attempt, result)
        if spawned:
            return self._succeed_spawning(end, spawned)
        return self._execute(_SUCCEED_SQL, _end_parameters(end)) is not None

    def _succeed_spawning(self, end: AttemptEnd, spawned: tuple[NewTask, ...]) -> bool:
        """The success and the steps it spawned, one transaction. The attempt's row first (the
        fence; a cancel asked for stores no step), then the steps and the workflow's counters,
        then the success, whose trigger finds the workflow with them: the locks in the order a
        step's end takes them."""
        fence = _end_parameters(end)
        with storage_errors(), self._pool.connection() as conn, conn.transaction():
            cursor = conn.cursor(row_factory=dict_row)
            held = cursor.execute(_HOLD_SQL.text, _HOLD_SQL.parameters(fence)).fetchone()
            if held is None:
                return False
            if held["cancel_requested_at"] is None:
                cursor.executemany(_INSERT_STEP_SQL.text, [_step_values(new) for new in spawned])
                edges = [
                    _EDGE_SQL.parameters({"child": new.id, "parent": parent})
                    for new in spawned
                    for parent in new.depends_on
                ]
                if edges:
                    cursor.executemany(_EDGE_SQL.text, edges)
                grown = {"the_workflow": held["workflow_id"], "more": len(spawned)}
                cursor.execute(_GROW_SQL.text, _GROW_SQL.parameters(grown))
            cursor.execute(_SUCCEED_SQL.text, _SUCCEED_SQL.parameters(fence))
            return cursor.fetchone() is not None

    def claim_released(
        self, parent_id: uuid.UUID, worker: str, lease: timedelta, queues: Sequence[str] = ()
    ) -> ClaimedAttempt | None:
        parameters = {
            "the_parent": parent_id,
            "served": list(queues),
            "claim_worker": worker,
            "lease": lease,
        }
        row = self._execute(_CLAIM_RELEASED_SQL, parameters)
        return None if row is None else claimed_from_row(row)

    def queue_settings(self, tenant: str, name: str) -> QueueSettings | None:
        parameters = {"of_tenant": tenant, "queue_name": name}
        row = self._execute(_QUEUE_SQL, parameters)
        return None if row is None else queue_from_row(row).settings

    def report_progress(self, task_id: uuid.UUID, attempt: int, progress: Progress) -> bool:
        parameters = {
            "the_task": task_id,
            "the_attempt": attempt,
            "progress_value": Jsonb(progress_value(progress)),
        }
        return self._execute(_PROGRESS_SQL, parameters) is not None

    def renew(self, task_id: uuid.UUID, attempt: int, lease: timedelta) -> Lease:
        parameters = {"the_task": task_id, "the_attempt": attempt, "lease": lease}
        row = self._execute(_RENEW_SQL, parameters)
        if row is None:
            return Lease(held=False, cancel_requested=False)
        return Lease(held=True, cancel_requested=row["cancel_requested_at"] is not None)

    def expired_leases(self, limit: int) -> list[ExpiredAttempt]:
        # No lock needed: fail(only_if_lease_expired=True) is guarded, so of two dispatchers
        # reading the same row only one records the loss.
        compiled = _EXPIRED_SQL
        parameters = compiled.parameters({"most": limit})
        with storage_errors(), self._pool.connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(compiled.text, parameters).fetchall()
        return [expired_from_row(row) for row in rows]

    def fail(
        self,
        task_id: uuid.UUID,
        attempt: int,
        error: AttemptError,
        retry_in: timedelta | None,
        *,
        only_if_lease_expired: bool = False,
    ) -> bool:
        end = AttemptEnd(task_id, attempt, error=error, retry_in=retry_in)
        compiled = _fail_sql(retry_in is not None, only_if_lease_expired)
        return self._execute(compiled, _end_parameters(end)) is not None

    def end_and_claim(
        self, end: AttemptEnd, task_id: uuid.UUID, worker: str, lease: timedelta
    ) -> ClaimedAttempt | None:
        parameters = {"next_task": task_id, "claim_worker": worker, "lease": lease}
        compiled = _end_and_claim_sql(end.error is not None, end.retry_in is not None)
        row = self._execute(compiled, _end_parameters(end) | parameters)
        return None if row is None else claimed_from_row(row)

    def _execute(self, compiled: Compiled, parameters: dict[str, Any]) -> dict[str, Any] | None:
        with storage_errors(), self._pool.connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            return cursor.execute(compiled.text, compiled.parameters(parameters)).fetchone()


def _step_values(new: NewTask) -> dict[str, Any]:
    """A spawned step's row, as the api's insert writes a task's."""
    values = insert_values(new)
    values["payload"] = Jsonb(values["payload"])
    return _INSERT_STEP_SQL.parameters(values)


def _end_parameters(end: AttemptEnd) -> dict[str, Any]:
    """The parameters of the succeed or fail statement that records `end`."""
    parameters: dict[str, Any] = {"the_task": end.task_id, "the_attempt": end.attempt}
    if end.error is None:
        return parameters | {"result_value": Jsonb(end.result)} | _NO_ERROR
    parameters |= {
        "error_type": end.error.type,
        "error_message": end.error.message,
        "error_traceback": end.error.traceback,
        "error_text": f"{end.error.type}: {end.error.message}",
    }
    if end.retry_in is not None:
        parameters["retry_in"] = end.retry_in
    return parameters


@functools.cache
def _fail_sql(retrying_wanted: bool, only_if_lease_expired: bool) -> Compiled:
    """The fail statement's four variants, each compiled on first use."""
    return Compiled.of(_fail_statement(retrying_wanted, only_if_lease_expired))


@functools.cache
def _end_and_claim_sql(failed: bool, retrying_wanted: bool) -> Compiled:
    """An attempt's end and the claim of another task, one statement: the end is a CTE that
    the claim does not read (PostgreSQL runs every data-modifying CTE to completion), the claim
    answers. The two rows differ, so neither CTE sees the other's change."""
    end = _fail_statement(retrying_wanted, False) if failed else _SUCCEED
    return Compiled.of(_claim_statement("next_task").add_cte(end.cte("ended")))


def _fail_statement(retrying_wanted: bool, only_if_lease_expired: bool) -> sa.Update:
    """RUNNING -> RETRYING, FAILED or CANCELLED for exactly this attempt."""
    # The row has the last word: no retry past max_attempts, whatever the caller computed
    # (a RETRYING task with no attempt left could never be claimed again).
    retrying = sa.and_(sa.literal(retrying_wanted), tasks.c.attempt < tasks.c.max_attempts)
    final_status = sa.case(
        (_CANCEL_REQUESTED, S.CANCELLED.value),
        (retrying, S.RETRYING.value),
        else_=S.FAILED.value,
    )
    values: dict[str, Any] = {
        "status": final_status,
        "error": sa.bindparam("error_text", type_=sa.Text()),
        "finished_at": sa.case(
            (sa.and_(retrying, sa.not_(_CANCEL_REQUESTED)), sa.null()), else_=sa.func.now()
        ),
    }
    if retrying_wanted:
        # The database's clock, which the dispatchers compare run_at with: a worker whose
        # clock is off neither delays a retry nor brings it forward.
        due = sa.func.now() + sa.bindparam("retry_in", type_=sa.Interval())
        values["run_at"] = sa.case(
            (sa.and_(retrying, sa.not_(_CANCEL_REQUESTED)), due), else_=tasks.c.run_at
        )
    guards = [tasks.c.lease_expires_at < sa.func.now()] if only_if_lease_expired else []
    return _finish_statement(values, guards)
