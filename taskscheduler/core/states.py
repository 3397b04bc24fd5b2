"""The task state machine: which status may follow which (DESIGN.md section 3)."""

from __future__ import annotations

from taskscheduler.core.model import TaskStatus

S = TaskStatus

ALLOWED_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.SCHEDULED: frozenset({S.PENDING, S.CANCELLED}),
    S.PENDING: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.SUCCESS, S.RETRYING, S.FAILED, S.CANCELLED}),
    S.RETRYING: frozenset({S.PENDING, S.CANCELLED}),
    S.SUCCESS: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}

# Statuses from which a cancel takes effect at once; RUNNING needs its handler to stop first.
CANCELLABLE_AT_ONCE = frozenset({S.SCHEDULED, S.PENDING, S.RETRYING})


def can_transition(current: TaskStatus, new: TaskStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


def initial_status(run_at_in_future: bool) -> TaskStatus:
    return S.SCHEDULED if run_at_in_future else S.PENDING
