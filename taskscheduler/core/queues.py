"""The use cases of queues: create, read, change, pause, resume, purge and delete them."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from datetime import datetime

from taskscheduler.core import paging, retry
from taskscheduler.core.errors import InvalidArgument, QueueInUse, QueueNotFound, unknown_queue
from taskscheduler.core.limits import (
    MAX_CONCURRENCY,
    MAX_RATE_PER_SECOND,
    QUEUE_NAME_PATTERN,
    QUEUE_NAME_RULE,
)
from taskscheduler.core.model import (
    DEFAULT_QUEUE,
    READ_SCOPE,
    WRITE_SCOPE,
    Caller,
    Queue,
    QueueSettings,
    QueueState,
    RateLimit,
)
from taskscheduler.core.permissions import require
from taskscheduler.core.ports import QueueRepository

NAME = re.compile(QUEUE_NAME_PATTERN)

QUEUE_FIELDS = frozenset(
    {"rate_limit", "max_concurrent", "max_concurrent_per_key", "retry_policy", "timeout"}
)
"""The fields of a queue an update may name (its name and state change by other calls)."""


def bucket_level(
    tokens: float, tokens_at: datetime, rate_per_second: float, burst: int, now: datetime
) -> float:
    """The tokens in a rate-limited queue's bucket at `now`: `tokens` as of `tokens_at`,
    refilled at the rate up to the burst."""
    refill = rate_per_second * (now - tokens_at).total_seconds()
    return float(min(burst, tokens + refill))


def check_queue_name(name: str, field: str = "name") -> str:
    if not NAME.fullmatch(name):
        raise InvalidArgument(field, f"must be {QUEUE_NAME_RULE}")
    return name


def validated_settings(settings: QueueSettings) -> QueueSettings:
    """Checks every bound; a rate limit without a burst gets one second's worth."""
    rate = settings.rate_limit
    if rate is not None:
        if not 0 < rate.per_second <= MAX_RATE_PER_SECOND:
            raise InvalidArgument(
                "rate_limit.per_second", f"must be above 0 and at most {MAX_RATE_PER_SECOND:g}"
            )
        if not 0 <= rate.burst <= MAX_CONCURRENCY:
            raise InvalidArgument("rate_limit.burst", f"must be between 0 and {MAX_CONCURRENCY}")
        if rate.burst == 0:
            settings = replace(settings, rate_limit=RateLimit(rate.per_second, _one_second(rate)))
    for name in ("max_concurrent", "max_concurrent_per_key"):
        if not 0 <= getattr(settings, name) <= MAX_CONCURRENCY:
            raise InvalidArgument(name, f"must be between 0 (no limit) and {MAX_CONCURRENCY}")
    retry.check_override(settings.retry_policy, "retry_policy.")
    retry.check_timeout(settings.timeout, "timeout")
    return settings


def _one_second(rate: RateLimit) -> int:
    return max(1, int(rate.per_second + 0.999))


@dataclass(frozen=True)
class QueuePage:
    queues: list[Queue]
    next_page_token: str


class QueueManager:
    """Queues belong to the caller's tenant; `default` always exists and cannot be deleted."""

    def __init__(self, repository: QueueRepository) -> None:
        self._repository = repository

    async def create(self, caller: Caller, name: str, settings: QueueSettings) -> Queue:
        require(caller, WRITE_SCOPE)
        check_queue_name(name, "queue.name")
        return await self._repository.create(caller.tenant, name, validated_settings(settings))

    async def get(self, caller: Caller, name: str) -> Queue:
        require(caller, READ_SCOPE)
        return await self._existing(caller, name)

    async def list(self, caller: Caller, page_size: int, page_token: str) -> QueuePage:
        require(caller, READ_SCOPE)
        size = paging.page_size_or_default(page_size)
        after = paging.decode_name_token(page_token)
        queues = await self._repository.list(caller.tenant, size + 1, after)
        token = paging.encode_name_token(queues[size - 1].name) if len(queues) > size else ""
        return QueuePage(queues[:size], token)

    async def update(
        self, caller: Caller, name: str, settings: QueueSettings, fields: frozenset[str]
    ) -> Queue:
        """Changes the named fields only (an empty set changes every one of them)."""
        require(caller, WRITE_SCOPE)
        check_queue_name(name)
        unknown = sorted(fields - QUEUE_FIELDS)
        if unknown:
            raise InvalidArgument("update_mask", f"names no field of a queue: {', '.join(unknown)}")
        updated = await self._repository.update(
            caller.tenant, name, validated_settings(settings), fields or QUEUE_FIELDS
        )
        return _found(updated, name)

    async def delete(self, caller: Caller, name: str) -> None:
        require(caller, WRITE_SCOPE)
        check_queue_name(name)
        if name == DEFAULT_QUEUE:
            raise QueueInUse("the default queue cannot be deleted")
        await self._repository.delete(caller.tenant, name)

    async def pause(self, caller: Caller, name: str) -> Queue:
        """Durable at once: the queue's tasks not yet claimed wait in PostgreSQL, and a message
        of theirs still with the broker no longer starts them."""
        return await self._set_state(caller, name, QueueState.PAUSED)

    async def resume(self, caller: Caller, name: str) -> Queue:
        return await self._set_state(caller, name, QueueState.RUNNING)

    async def purge(self, caller: Caller, name: str) -> tuple[Queue, int]:
        """Cancels every task of the queue that waits (scheduled, pending or retrying)."""
        require(caller, WRITE_SCOPE)
        check_queue_name(name)
        cancelled = await self._repository.purge(caller.tenant, name)
        if cancelled is None:
            raise QueueNotFound(name)
        return await self._existing(caller, name), cancelled

    async def _set_state(self, caller: Caller, name: str, state: QueueState) -> Queue:
        require(caller, WRITE_SCOPE)
        check_queue_name(name)
        return _found(await self._repository.set_state(caller.tenant, name, state), name)

    async def _existing(self, caller: Caller, name: str) -> Queue:
        check_queue_name(name)
        return _found(await self._repository.get(caller.tenant, name), name)


def _found(queue: Queue | None, name: str) -> Queue:
    if queue is None:
        raise QueueNotFound(name)
    return queue


class QueueDefaults:
    """The settings of the queues tasks are scheduled into, read at most once a second per
    queue: a change of a queue's task defaults applies to tasks scheduled a second later."""

    def __init__(self, repository: QueueRepository, ttl_seconds: float = 1.0) -> None:
        self._repository = repository
        self._ttl = ttl_seconds
        self._cache: dict[tuple[str, str], tuple[float, QueueSettings]] = {}

    async def settings(self, tenant: str, name: str) -> QueueSettings:
        key = (tenant, name)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        queue = await self._repository.get_for_tasks(tenant, name)
        if queue is None:
            raise unknown_queue("queue", name)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + self._ttl, queue.settings)
        return queue.settings
