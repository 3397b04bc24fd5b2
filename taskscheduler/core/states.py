"""The task state machine: which status may follow which (the README's "Task life cycle")."""

from __future__ import annotations

from taskscheduler.core.model import TaskStatus

S = TaskStatus

DEPENDENCY_FAILED = "taskscheduler.DependencyFailed"
"""The error type of a task cancelled (BLOCKED -> CANCELLED) because a task it depends on
failed or was cancelled."""

ALLOWED_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.BLOCKED: frozenset({S.PENDING, S.SCHEDULED, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.PENDING, S.CANCELLED}),
    S.PENDING: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.SUCCESS, S.RETRYING, S.FAILED, S.CANCELLED}),
    S.RETRYING: frozenset({S.PENDING, S.CANCELLED}),
    S.SUCCESS: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


def can_transition(current: TaskStatus, new: TaskStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


# A RUNNING task among them is only asked to stop: it ends CANCELLED once its handler has.
CANCELLABLE = frozenset(status for status in S if can_transition(status, S.CANCELLED))


def initial_status(run_at_in_future: bool) -> TaskStatus:
    return S.SCHEDULED if run_at_in_future else S.PENDING
