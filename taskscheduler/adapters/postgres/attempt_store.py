"""The worker's storage (sync): claim an attempt and record its outcome, fenced by attempt."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from taskscheduler.adapters.postgres.engine import storage_errors
from taskscheduler.adapters.postgres.rows import claimed_from_row, expired_from_row
from taskscheduler.adapters.postgres.schema import task_attempts, tasks
from taskscheduler.core.execution import AttemptError, ClaimedAttempt, ExpiredAttempt, Lease
from taskscheduler.core.model import JSON, TaskStatus

S = TaskStatus
_CANCEL_REQUESTED = tasks.c.cancel_requested_at.isnot(None)


# The fence: only the worker running this very attempt may change the row.
_THIS_ATTEMPT = (
    tasks.c.id == sa.bindparam("the_task"),
    tasks.c.status == S.RUNNING.value,
    tasks.c.attempt == sa.bindparam("the_attempt"),
)


def _claim_statement() -> sa.Select[Any]:
    """PENDING -> RUNNING with a lease, and the attempt's row, in one statement."""
    now = sa.func.now()
    claimed = (
        tasks.update()
        .where(
            tasks.c.id == sa.bindparam("the_task"),
            tasks.c.status == S.PENDING.value,
            # A task its queue has not let through (or took back: a pause) is not to run yet,
            # whatever message of its the broker delivers.
            tasks.c.dispatched_at.isnot(None),
            tasks.c.attempt < tasks.c.max_attempts,
        )
        .values(
            status=S.RUNNING.value,
            attempt=tasks.c.attempt + 1,
            started_at=now,
            updated_at=now,
            worker=sa.bindparam("claim_worker"),
            lease_expires_at=now + sa.bindparam("lease", type_=sa.Interval()),
        )
        .returning(*tasks.c)
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
    return sa.select(claimed).add_cte(recorded)


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
        (finished.c.status.in_([S.SUCCESS.value, S.CANCELLED.value]), finished.c.status),
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


# The hot statements (claim, lease renewal, success) are built once: SQLAlchemy then finds
# their compiled form by identity, instead of building and hashing a new one on every call.
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


class PostgresAttemptStore:
    """Implements core.execution.AttemptStore; each method is one statement (CTEs)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def claim(self, task_id: uuid.UUID, worker: str, lease: timedelta) -> ClaimedAttempt | None:
        row = self._execute(_CLAIM, {"the_task": task_id, "claim_worker": worker, "lease": lease})
        return None if row is None else claimed_from_row(row)

    def succeed(self, task_id: uuid.UUID, attempt: int, result: JSON) -> bool:
        parameters = {"the_task": task_id, "the_attempt": attempt, "result_value": result}
        return self._execute(_SUCCEED, parameters | _NO_ERROR) is not None

    def renew(self, task_id: uuid.UUID, attempt: int, lease: timedelta) -> Lease:
        row = self._execute(_RENEW, {"the_task": task_id, "the_attempt": attempt, "lease": lease})
        if row is None:
            return Lease(held=False, cancel_requested=False)
        return Lease(held=True, cancel_requested=row["cancel_requested_at"] is not None)

    def expired_leases(self, limit: int) -> list[ExpiredAttempt]:
        query = (
            sa.select(tasks)
            .where(tasks.c.status == S.RUNNING.value, tasks.c.lease_expires_at < sa.func.now())
            .order_by(tasks.c.lease_expires_at)
            .limit(limit)
        )
        # No lock needed: fail(only_if_lease_expired=True) is guarded, so of two dispatchers
        # reading the same row only one records the loss.
        with storage_errors(), self._engine.begin() as conn:
            rows = conn.execute(query).mappings().all()
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
        # The row has the last word: no retry past max_attempts, whatever the caller computed
        # (a RETRYING task with no attempt left could never be claimed again).
        retrying = sa.and_(sa.literal(retry_in is not None), tasks.c.attempt < tasks.c.max_attempts)
        final_status = sa.case(
            (_CANCEL_REQUESTED, S.CANCELLED.value),
            (retrying, S.RETRYING.value),
            else_=S.FAILED.value,
        )
        values: dict[str, Any] = {
            "status": final_status,
            "error": f"{error.type}: {error.message}",
            "finished_at": sa.case(
                (sa.and_(retrying, sa.not_(_CANCEL_REQUESTED)), sa.null()), else_=sa.func.now()
            ),
        }
        parameters = {
            "the_task": task_id,
            "the_attempt": attempt,
            "error_type": error.type,
            "error_message": error.message,
            "error_traceback": error.traceback,
        }
        if retry_in is not None:
            # The database's clock, which the dispatchers compare run_at with: a worker whose
            # clock is off neither delays a retry nor brings it forward.
            due = sa.func.now() + sa.bindparam("retry_in", type_=sa.Interval())
            values["run_at"] = sa.case(
                (sa.and_(retrying, sa.not_(_CANCEL_REQUESTED)), due), else_=tasks.c.run_at
            )
            parameters["retry_in"] = retry_in
        guards = [tasks.c.lease_expires_at < sa.func.now()] if only_if_lease_expired else []
        return self._execute(_finish_statement(values, guards), parameters) is not None

    def _execute(
        self, statement: sa.Executable, parameters: dict[str, Any] | None = None
    ) -> sa.RowMapping | None:
        """Runs one statement in autocommit: a single statement is its own transaction, so
        BEGIN and COMMIT would only add two round trips."""
        with storage_errors(), self._autocommit.connect() as conn:
            return conn.execute(statement, parameters).mappings().first()
