"""The recovery of attempts whose lease expired (a killed worker, a hard timeout): each goes
back under its retry policy, its loss recorded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from taskscheduler.core.execution import (
    CANCELLED_ERROR,
    WORKER_LOST_ERROR,
    retry_delay,
    timeout_error,
)
from taskscheduler.core.ports import AttemptError, AttemptStore, ExpiredAttempt


def lost_attempt_error(expired: ExpiredAttempt, now: datetime) -> AttemptError:
    """Why an attempt's lease expired: its timeout (the worker was stopped) or a lost worker."""
    if expired.cancel_requested:
        return AttemptError(CANCELLED_ERROR, "the worker was stopped after a cancel request")
    if expired.timeout is not None and now - expired.start_time >= expired.timeout:
        return timeout_error(expired.timeout, " and its process was stopped")
    return AttemptError(
        WORKER_LOST_ERROR, "the worker stopped renewing its lease (killed, or cut off)"
    )


def recover_expired_leases(
    store: AttemptStore, limit: int, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> int:
    """Puts attempts whose lease expired back under their retry policy; returns how many.
    `clock` tells whether an attempt outlived its timeout (a test passes its store's)."""
    recovered = 0
    for expired in store.expired_leases(limit):
        error = lost_attempt_error(expired, clock())
        retry_in = retry_delay(expired.retry_policy, expired.attempt, retryable=True)
        if store.fail(
            expired.task_id, expired.attempt, error, retry_in, only_if_lease_expired=True
        ):
            recovered += 1
    return recovered
