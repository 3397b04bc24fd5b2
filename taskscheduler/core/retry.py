"""Backoff between attempts: exponential, capped, optionally with full jitter."""

from __future__ import annotations

import math
import random
from datetime import timedelta

from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.limits import (
    MAX_ATTEMPTS,
    MAX_BACKOFF_MULTIPLIER,
    MAX_DURATION,
    MIN_ATTEMPTS,
    MIN_BACKOFF_MULTIPLIER,
)
from taskscheduler.core.model import RetryPolicy, RetryPolicyOverride


def check_timeout(timeout: timedelta | None, field: str) -> None:
    """An attempt's time limit, when one is set: a task's, a queue's or a template's."""
    if timeout is not None and not timedelta(0) < timeout <= MAX_DURATION:
        raise InvalidArgument(field, f"must be positive, at most {MAX_DURATION.days} days")


def check_override(policy: RetryPolicyOverride, prefix: str) -> None:
    """The bounds of each field set (a task's, a queue's or a template's defaults)."""
    attempts = policy.max_attempts
    if attempts is not None and not MIN_ATTEMPTS <= attempts <= MAX_ATTEMPTS:
        raise InvalidArgument(
            prefix + "max_attempts", f"must be between {MIN_ATTEMPTS} and {MAX_ATTEMPTS}"
        )
    for name in ("initial_backoff", "max_backoff"):
        value = getattr(policy, name)
        if value is not None and not timedelta(0) <= value <= MAX_DURATION:
            raise InvalidArgument(prefix + name, f"must be from 0 to {MAX_DURATION.days} days")
    multiplier = policy.backoff_multiplier
    # NaN compares false with everything: "not <= x <=" refuses it, "< 1" would let it through.
    if multiplier is not None and not (
        math.isfinite(multiplier) and MIN_BACKOFF_MULTIPLIER <= multiplier <= MAX_BACKOFF_MULTIPLIER
    ):
        raise InvalidArgument(
            prefix + "backoff_multiplier",
            f"must be from {MIN_BACKOFF_MULTIPLIER:g} to {MAX_BACKOFF_MULTIPLIER:g}",
        )


def validated(policy: RetryPolicy, prefix: str = "retry_policy.") -> RetryPolicy:
    """A task's whole policy, defaults applied: each bound, and a cap not below the start."""
    check_override(RetryPolicyOverride.every_field_of(policy), prefix)
    if policy.max_backoff < policy.initial_backoff:
        raise InvalidArgument(prefix + "max_backoff", "must not be less than initial_backoff")
    return policy


def backoff(
    policy: RetryPolicy, failed_attempt: int, rng: random.Random | None = None
) -> timedelta:
    """Delay before the attempt after `failed_attempt` (1-based).

    initial * multiplier^(failed_attempt-1), capped at max_backoff; with jitter, a uniform draw
    from [0, that] (AWS's "full jitter").
    """
    exponent = max(failed_attempt - 1, 0)
    ceiling = policy.max_backoff.total_seconds()
    computed = policy.initial_backoff.total_seconds()
    for _ in range(exponent):
        computed *= policy.backoff_multiplier
        if computed >= ceiling:
            break
    seconds = min(computed, ceiling)
    if policy.jitter:
        seconds = (rng or random).uniform(0, seconds)
    return timedelta(seconds=seconds)
