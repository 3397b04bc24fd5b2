"""The state machine of the README's "Task life cycle"."""

from __future__ import annotations

import pytest

from taskscheduler.core.model import TERMINAL_STATUSES, TaskStatus
from taskscheduler.core.states import ALLOWED_TRANSITIONS, can_transition, initial_status

S = TaskStatus

LEGAL = {
    (S.SCHEDULED, S.PENDING),
    (S.PENDING, S.RUNNING),
    (S.RUNNING, S.SUCCESS),
    (S.RUNNING, S.RETRYING),
    (S.RUNNING, S.FAILED),
    (S.RETRYING, S.PENDING),
    (S.SCHEDULED, S.CANCELLED),
    (S.PENDING, S.CANCELLED),
    (S.RETRYING, S.CANCELLED),
    (S.RUNNING, S.CANCELLED),
    (S.BLOCKED, S.PENDING),
    (S.BLOCKED, S.SCHEDULED),
    (S.BLOCKED, S.CANCELLED),
}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("new", list(S))
def test_only_the_designed_transitions_are_allowed(current: TaskStatus, new: TaskStatus) -> None:
    assert can_transition(current, new) == ((current, new) in LEGAL)


def test_terminal_statuses_never_change() -> None:
    assert {S.SUCCESS, S.FAILED, S.CANCELLED} == TERMINAL_STATUSES
    for status in TERMINAL_STATUSES:
        assert status.is_terminal
        assert not ALLOWED_TRANSITIONS[status]


def test_a_new_task_is_scheduled_only_when_due_later() -> None:
    assert initial_status(run_at_in_future=True) is S.SCHEDULED
    assert initial_status(run_at_in_future=False) is S.PENDING
