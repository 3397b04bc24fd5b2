"""Conversions between table rows and domain types, shared by every store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from taskscheduler.adapters.postgres.schema import tasks
from taskscheduler.core.execution import ClaimedAttempt, ExpiredAttempt
from taskscheduler.core.model import Attempt, NewTask, RetryPolicy, Task, TaskStatus

Row = Mapping[Any, Any]


def retry_policy_from_row(row: Row) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=row["max_attempts"],
        initial_backoff=timedelta(seconds=row["initial_backoff_seconds"]),
        max_backoff=timedelta(seconds=row["max_backoff_seconds"]),
        backoff_multiplier=row["backoff_multiplier"],
        jitter=row["jitter"],
    )


def _timeout(row: Row) -> timedelta | None:
    seconds = row["timeout_seconds"]
    return None if seconds is None else timedelta(seconds=seconds)


def attempt_from_row(row: Row) -> Attempt:
    return Attempt(
        number=row["number"],
        status=TaskStatus(row["status"]),
        worker=row["worker"],
        start_time=row["started_at"],
        finish_time=row["finished_at"],
        error_type=row["error_type"] or "",
        error_message=row["error_message"] or "",
        traceback=row["traceback"] or "",
    )


def task_from_row(row: Row, attempt_rows: Sequence[Row] = ()) -> Task:
    return Task(
        id=row["id"],
        tenant=row["tenant"],
        kind=row["kind"],
        payload=row["payload"],
        status=TaskStatus(row["status"]),
        attempt=row["attempt"],
        retry_policy=retry_policy_from_row(row),
        timeout=_timeout(row),
        run_at=row["run_at"],
        create_time=row["created_at"],
        update_time=row["updated_at"],
        start_time=row["started_at"],
        finish_time=row["finished_at"],
        result=row["result"],
        error=row["error"] or "",
        request_id=row["request_id"] or "",
        request_fingerprint=row["request_fingerprint"] or "",
        cancel_requested=row["cancel_requested_at"] is not None,
        version=row["version"],
        attempts=tuple(attempt_from_row(a) for a in attempt_rows),
    )


def claimed_from_row(row: Row) -> ClaimedAttempt:
    return ClaimedAttempt(
        task_id=row["id"],
        kind=row["kind"],
        payload=row["payload"],
        attempt=row["attempt"],
        retry_policy=retry_policy_from_row(row),
        timeout=_timeout(row),
        waited=row["started_at"] - max(row["created_at"], row["run_at"]),
    )


def expired_from_row(row: Row) -> ExpiredAttempt:
    return ExpiredAttempt(
        task_id=row["id"],
        attempt=row["attempt"],
        retry_policy=retry_policy_from_row(row),
        timeout=_timeout(row),
        start_time=row["started_at"],
        cancel_requested=row["cancel_requested_at"] is not None,
    )


def insert_values(new: NewTask) -> dict[str, Any]:
    policy = new.retry_policy
    return {
        tasks.c.id.name: new.id,
        tasks.c.tenant.name: new.tenant,
        tasks.c.kind.name: new.kind,
        tasks.c.payload.name: new.payload,
        tasks.c.status.name: new.status.value,
        tasks.c.max_attempts.name: policy.max_attempts,
        tasks.c.initial_backoff_seconds.name: policy.initial_backoff.total_seconds(),
        tasks.c.max_backoff_seconds.name: policy.max_backoff.total_seconds(),
        tasks.c.backoff_multiplier.name: policy.backoff_multiplier,
        tasks.c.jitter.name: policy.jitter,
        tasks.c.timeout_seconds.name: new.timeout.total_seconds() if new.timeout else None,
        tasks.c.run_at.name: new.run_at,
        tasks.c.request_id.name: new.request_id or None,
        tasks.c.request_fingerprint.name: new.request_fingerprint or None,
    }
