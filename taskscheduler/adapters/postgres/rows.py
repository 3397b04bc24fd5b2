"""Conversions between table rows and domain types, shared by every store."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from taskscheduler.adapters.postgres.schema import tasks
from taskscheduler.core.model import (
    JSON,
    Attempt,
    NewTask,
    Overlap,
    Progress,
    Queue,
    QueueSettings,
    QueueState,
    RateLimit,
    RetryPolicy,
    RetryPolicyOverride,
    Schedule,
    ScheduleSpec,
    Task,
    TaskStatus,
    TaskTemplate,
)
from taskscheduler.core.ports import ClaimedAttempt, ExpiredAttempt

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
    return _seconds(row, "timeout_seconds")


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


def task_from_row(
    row: Row, attempt_rows: Sequence[Row] = (), depends_on: Sequence[uuid.UUID] = ()
) -> Task:
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
        queue=row["queue"],
        priority=row["priority"],
        concurrency_key=row["concurrency_key"] or "",
        schedule_id=row["schedule_id"],
        fire_time=row["fire_time"],
        cancel_requested=row["cancel_requested_at"] is not None,
        version=row["version"],
        workflow_id=row["workflow_id"],
        step_name=row["step_name"] or "",
        depends_on=tuple(depends_on),
        attempts=tuple(attempt_from_row(a) for a in attempt_rows),
        progress=progress_from_value(row.get("progress"), row.get("progress_at")),
    )


def progress_value(progress: Progress) -> dict[str, JSON]:
    """The `progress` column's JSON (its time is the progress_at column)."""
    return {"done": progress.done, "total": progress.total, "message": progress.message}


def progress_from_value(value: Any, update_time: datetime | None) -> Progress | None:
    if value is None:
        return None
    return Progress(value["done"], value["total"], value["message"], update_time)


def claimed_from_row(row: Row) -> ClaimedAttempt:
    return ClaimedAttempt(
        task_id=row["id"],
        kind=row["kind"],
        payload=row["payload"],
        attempt=row["attempt"],
        retry_policy=retry_policy_from_row(row),
        timeout=_timeout(row),
        waited=row["started_at"] - max(row["created_at"], row["run_at"]),
        tenant=row["tenant"],
        releases_alone=row["releases_alone"],
        workflow_id=row["workflow_id"],
        step_name=row["step_name"] or "",
        dependency_results=row["dependency_results"] or {},
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


INSERTED_COLUMNS = (
    "id",
    "tenant",
    "kind",
    "payload",
    "status",
    "max_attempts",
    "initial_backoff_seconds",
    "max_backoff_seconds",
    "backoff_multiplier",
    "jitter",
    "timeout_seconds",
    "run_at",
    "request_id",
    "request_fingerprint",
    "queue",
    "priority",
    "concurrency_key",
    "traceparent",
    "schedule_id",
    "fire_time",
    "workflow_id",
    "step_name",
    "blocked_on",
    "has_dependents",
)
"""The columns of a task that its insert sets (insert_values' keys); the others have defaults."""


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
        tasks.c.queue.name: new.queue,
        tasks.c.priority.name: new.priority,
        tasks.c.concurrency_key.name: new.concurrency_key or None,
        tasks.c.traceparent.name: new.traceparent or None,
        tasks.c.schedule_id.name: new.schedule_id,
        tasks.c.fire_time.name: new.fire_time,
        tasks.c.workflow_id.name: new.workflow_id,
        tasks.c.step_name.name: new.step_name or None,
        tasks.c.blocked_on.name: new.blocked_on if new.depends_on else None,
        tasks.c.has_dependents.name: new.has_dependents,
    }


def _seconds(row: Row, column: str) -> timedelta | None:
    value = row[column]
    return None if value is None else timedelta(seconds=value)


def _in_seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


RETRY_OVERRIDE_COLUMNS = (
    "max_attempts",
    "initial_backoff_seconds",
    "max_backoff_seconds",
    "backoff_multiplier",
    "jitter",
)
"""A retry policy's fields as nullable columns (of a queue, of a schedule's template)."""


def retry_override_from_row(row: Row) -> RetryPolicyOverride:
    return RetryPolicyOverride(
        max_attempts=row["max_attempts"],
        initial_backoff=_seconds(row, "initial_backoff_seconds"),
        max_backoff=_seconds(row, "max_backoff_seconds"),
        backoff_multiplier=row["backoff_multiplier"],
        jitter=row["jitter"],
    )


def retry_override_values(policy: RetryPolicyOverride) -> dict[str, Any]:
    return {
        "max_attempts": policy.max_attempts,
        "initial_backoff_seconds": _in_seconds(policy.initial_backoff),
        "max_backoff_seconds": _in_seconds(policy.max_backoff),
        "backoff_multiplier": policy.backoff_multiplier,
        "jitter": policy.jitter,
    }


QUEUE_FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "rate_limit": ("rate_per_second", "rate_burst"),
    "max_concurrent": ("max_concurrent",),
    "max_concurrent_per_key": ("max_concurrent_per_key",),
    "retry_policy": RETRY_OVERRIDE_COLUMNS,
    "timeout": ("timeout_seconds",),
}
"""The columns behind each field of a queue an update may name."""


def queue_from_row(row: Row) -> Queue:
    rate = row["rate_per_second"]
    settings = QueueSettings(
        rate_limit=None if rate is None else RateLimit(rate, row["rate_burst"]),
        max_concurrent=row["max_concurrent"] or 0,
        max_concurrent_per_key=row["max_concurrent_per_key"] or 0,
        retry_policy=retry_override_from_row(row),
        timeout=_seconds(row, "timeout_seconds"),
    )
    return Queue(
        tenant=row["tenant"],
        name=row["name"],
        state=QueueState(row["state"]),
        settings=settings,
        create_time=row["created_at"],
        update_time=row["updated_at"],
        waiting=row.get("waiting", 0),
        running=row.get("running", 0),
    )


def queue_settings_values(settings: QueueSettings) -> dict[str, Any]:
    """The columns of a queue's settings (its state and token bucket aside)."""
    rate = settings.rate_limit
    return {
        "rate_per_second": None if rate is None else rate.per_second,
        "rate_burst": None if rate is None else rate.burst,
        "max_concurrent": settings.max_concurrent or None,
        "max_concurrent_per_key": settings.max_concurrent_per_key or None,
        **retry_override_values(settings.retry_policy),
        "timeout_seconds": _in_seconds(settings.timeout),
    }


SCHEDULE_FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "cron": ("cron",),
    "time_zone": ("time_zone",),
    "task": (
        "kind",
        "payload",
        "queue",
        "priority",
        "concurrency_key",
        *RETRY_OVERRIDE_COLUMNS,
        "timeout_seconds",
    ),
    "overlap": ("overlap",),
    "catchup_window": ("catchup_window_seconds",),
    "description": ("description",),
}
"""The columns behind each field of a schedule an update may name."""


def schedule_spec_values(spec: ScheduleSpec) -> dict[str, Any]:
    task = spec.task
    return {
        "cron": spec.cron,
        "time_zone": spec.time_zone,
        "kind": task.kind,
        "payload": task.payload,
        "queue": task.queue,
        "priority": task.priority,
        "concurrency_key": task.concurrency_key or None,
        **retry_override_values(task.retry_policy),
        "timeout_seconds": _in_seconds(task.timeout),
        "overlap": spec.overlap.value,
        "catchup_window_seconds": spec.catchup_window.total_seconds(),
        "description": spec.description,
    }


def schedule_from_row(row: Row) -> Schedule:
    template = TaskTemplate(
        kind=row["kind"],
        payload=row["payload"],
        queue=row["queue"],
        priority=row["priority"],
        concurrency_key=row["concurrency_key"] or "",
        retry_policy=retry_override_from_row(row),
        timeout=_seconds(row, "timeout_seconds"),
    )
    spec = ScheduleSpec(
        cron=row["cron"],
        task=template,
        time_zone=row["time_zone"],
        overlap=Overlap(row["overlap"]),
        catchup_window=timedelta(seconds=row["catchup_window_seconds"]),
        description=row["description"],
    )
    return Schedule(
        id=row["id"],
        tenant=row["tenant"],
        spec=spec,
        paused=row["paused"],
        next_fire_time=row["next_fire_at"],
        create_time=row["created_at"],
        update_time=row["updated_at"],
        last_fire_time=row["last_fire_at"],
        last_task_id=row["last_task_id"],
        buffered_fire_time=row["buffered_fire_at"],
    )
