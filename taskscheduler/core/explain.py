"""Why a task has not started: the reasons read from what the store knows of the task, its
queue, its dependencies and the fleet, by the same rules the dispatchers let tasks through by."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskscheduler.core.errors import TaskNotFound
from taskscheduler.core.model import READ_SCOPE, Caller, QueueState, TaskStatus
from taskscheduler.core.permissions import require
from taskscheduler.core.ports import WaitFacts, WaitFactsReader
from taskscheduler.core.tasks import parse_task_id


class ReasonCode(enum.StrEnum):
    NOT_DUE = "NOT_DUE"
    RETRY_BACKOFF = "RETRY_BACKOFF"
    BLOCKED_BY_DEPENDENCIES = "BLOCKED_BY_DEPENDENCIES"
    QUEUE_PAUSED = "QUEUE_PAUSED"
    RATE_LIMITED = "RATE_LIMITED"
    QUEUE_CONCURRENCY_LIMIT = "QUEUE_CONCURRENCY_LIMIT"
    KEY_CONCURRENCY_LIMIT = "KEY_CONCURRENCY_LIMIT"
    BEHIND_OTHER_TASKS = "BEHIND_OTHER_TASKS"
    NO_WORKER_FOR_QUEUE = "NO_WORKER_FOR_QUEUE"
    DISPATCHED_WAITING_FOR_WORKER = "DISPATCHED_WAITING_FOR_WORKER"


@dataclass(frozen=True)
class Reason:
    """One thing that holds the task back; `until` when it is known to end at a time."""

    code: ReasonCode
    message: str
    until: datetime | None = None
    task_ids: tuple[uuid.UUID, ...] = ()  # BLOCKED_BY_DEPENDENCIES: the dependencies waited for
    count: int = 0  # the tasks holding slots, or ahead of it
    limit: int = 0  # the cap those slots count against


@dataclass(frozen=True)
class Explanation:
    """The task's status and why it waits; for a RUNNING task, its worker and lease instead."""

    task_id: uuid.UUID
    status: TaskStatus
    reasons: tuple[Reason, ...]
    worker: str = ""
    lease_expires_at: datetime | None = None


class TaskExplainer:
    """ExplainTask: the use case, over the store's facts and the dispatchers' bound."""

    def __init__(self, facts: WaitFactsReader, dispatch_ahead: int) -> None:
        self._facts = facts
        self._dispatch_ahead = dispatch_ahead

    async def explain(self, caller: Caller, task_id: str) -> Explanation:
        require(caller, READ_SCOPE)
        facts = await self._facts.read(caller.tenant, parse_task_id(task_id))
        if facts is None:
            raise TaskNotFound(task_id)
        return explain(facts, self._dispatch_ahead)


def explain(facts: WaitFacts, dispatch_ahead: int) -> Explanation:
    """Every reason that holds the task back now, the first one first."""
    status = facts.status
    if status is TaskStatus.RUNNING:
        return Explanation(facts.task_id, status, (), facts.worker or "", facts.lease_expires_at)
    reasons: list[Reason] = []
    if status.is_terminal:
        return Explanation(facts.task_id, status, ())
    if status is TaskStatus.BLOCKED:
        reasons.append(_blocked(facts))
    if status is TaskStatus.RETRYING:
        reasons.append(_backoff(facts))
    elif status in (TaskStatus.SCHEDULED, TaskStatus.BLOCKED) and facts.run_at > facts.now:
        reasons.append(_not_due(facts))
    if status is TaskStatus.PENDING and facts.dispatched_at is not None:
        reasons.append(_dispatched(facts))
    else:
        reasons += _held_by_queue(facts, dispatch_ahead)
    if facts.serving_workers == 0:
        reasons.append(
            Reason(
                ReasonCode.NO_WORKER_FOR_QUEUE,
                f"no live worker serves queue {facts.queue!r}: start one that does "
                "(TASKSCHED_WORKER_QUEUES empty serves every queue)",
            )
        )
    return Explanation(facts.task_id, status, tuple(reasons))


def _blocked(facts: WaitFacts) -> Reason:
    waiting = len(facts.unfinished_dependencies)
    return Reason(
        ReasonCode.BLOCKED_BY_DEPENDENCIES,
        f"waits for {waiting} dependenc{'y' if waiting == 1 else 'ies'} to succeed",
        task_ids=facts.unfinished_dependencies,
        count=waiting,
    )


def _not_due(facts: WaitFacts) -> Reason:
    return Reason(
        ReasonCode.NOT_DUE,
        f"due at {facts.run_at.isoformat()} (run_at), in {_span(facts.run_at - facts.now)}",
        until=facts.run_at,
    )


def _backoff(facts: WaitFacts) -> Reason:
    error = f" ({facts.last_error})" if facts.last_error else ""
    return Reason(
        ReasonCode.RETRY_BACKOFF,
        f"attempt {facts.attempt} of {facts.max_attempts} failed{error}; the next one is due "
        f"in {_span(facts.run_at - facts.now)}",
        until=facts.run_at,
    )


def _dispatched(facts: WaitFacts) -> Reason:
    assert facts.dispatched_at is not None
    return Reason(
        ReasonCode.DISPATCHED_WAITING_FOR_WORKER,
        f"with the broker for {_span(facts.now - facts.dispatched_at)}, waiting for a free "
        f"worker; {facts.unclaimed} task(s) of its queue are there unclaimed",
        count=facts.unclaimed,
    )


def _held_by_queue(facts: WaitFacts, dispatch_ahead: int) -> list[Reason]:
    """What its queue holds a waiting task back with, in the dispatchers' order of checks."""
    reasons: list[Reason] = []
    if facts.queue_state is QueueState.PAUSED:
        reasons.append(
            Reason(ReasonCode.QUEUE_PAUSED, f"queue {facts.queue!r} is paused: resume it")
        )
    if facts.rate_per_second is not None and facts.tokens is not None and facts.tokens < 1:
        wait = (1 - facts.tokens) / facts.rate_per_second
        reasons.append(
            Reason(
                ReasonCode.RATE_LIMITED,
                f"queue {facts.queue!r} lets {facts.rate_per_second:g} task(s) a second through "
                f"and has {facts.tokens:.2f} token(s); the next one comes in {wait:.2f}s",
                until=facts.now + timedelta(seconds=wait),
            )
        )
    if facts.max_concurrent and facts.in_flight >= facts.max_concurrent:
        reasons.append(
            Reason(
                ReasonCode.QUEUE_CONCURRENCY_LIMIT,
                f"{facts.in_flight} task(s) of queue {facts.queue!r} hold its "
                f"{facts.max_concurrent} slot(s) (max_concurrent)",
                count=facts.in_flight,
                limit=facts.max_concurrent,
            )
        )
    per_key = facts.max_concurrent_per_key
    if per_key and facts.concurrency_key and facts.key_in_flight >= per_key:
        reasons.append(
            Reason(
                ReasonCode.KEY_CONCURRENCY_LIMIT,
                f"{facts.key_in_flight} task(s) of key {facts.concurrency_key!r} hold its "
                f"{per_key} slot(s) (max_concurrent_per_key)",
                count=facts.key_in_flight,
                limit=per_key,
            )
        )
    if facts.status is not TaskStatus.PENDING:
        return reasons
    if facts.ready_ahead:
        reasons.append(
            Reason(
                ReasonCode.BEHIND_OTHER_TASKS,
                f"{facts.ready_ahead} ready task(s) of queue {facts.queue!r} go before it "
                "(higher priority, or due earlier)",
                count=facts.ready_ahead,
            )
        )
    elif facts.unclaimed >= dispatch_ahead:
        reasons.append(
            Reason(
                ReasonCode.BEHIND_OTHER_TASKS,
                f"{facts.unclaimed} task(s) of queue {facts.queue!r} are with the broker "
                f"unclaimed (the bound is {dispatch_ahead}); it goes once workers take them",
                count=facts.unclaimed,
                limit=dispatch_ahead,
            )
        )
    return reasons


def _span(delta: timedelta) -> str:
    seconds = max(0.0, delta.total_seconds())
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
