"""Backoff between attempts."""

from __future__ import annotations

import random
from datetime import timedelta

from taskscheduler.core.model import RetryPolicy
from taskscheduler.core.retry import backoff

POLICY = RetryPolicy(
    max_attempts=10,
    initial_backoff=timedelta(seconds=1),
    max_backoff=timedelta(seconds=10),
    backoff_multiplier=2.0,
    jitter=False,
)


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    delays = [backoff(POLICY, attempt).total_seconds() for attempt in range(1, 7)]
    assert delays == [1, 2, 4, 8, 10, 10]


def test_full_jitter_draws_within_zero_and_the_computed_backoff() -> None:
    policy = RetryPolicy(**{**POLICY.__dict__, "jitter": True})
    rng = random.Random(7)
    draws = [backoff(policy, 3, rng).total_seconds() for _ in range(500)]
    assert all(0 <= draw <= 4 for draw in draws)
    assert min(draws) < 0.5 and max(draws) > 3.5  # spread over the whole range


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert backoff(POLICY, 10_000) == timedelta(seconds=10)
