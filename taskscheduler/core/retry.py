"""Backoff between attempts: exponential, capped, optionally with full jitter."""

from __future__ import annotations

import random
from datetime import timedelta

from taskscheduler.core.model import RetryPolicy


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
