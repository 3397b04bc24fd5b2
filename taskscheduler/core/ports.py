"""The interfaces the core needs from its adapters (storage, broker, status events)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Protocol

from taskscheduler.core.model import (
    NewTask,
    PageCursor,
    StatusEvent,
    Task,
    TaskFilter,
    TaskPage,
    TaskStatus,
)

RESYNC = None
"""Sent on an event subscription when events may have been missed (the listener reconnected)."""


class TaskRepository(Protocol):
    """Durable storage of tasks; every status change is one guarded statement."""

    async def insert(self, new: NewTask) -> tuple[Task, bool]:
        """Stores a task; with a request_id already used, returns that task and False."""
        ...

    async def insert_many(self, news: list[NewTask]) -> list[tuple[Task, bool]]:
        """Stores tasks in one transaction, in order; with an idempotency key already used for
        the same request, gives that task and False; for another request, raises
        IdempotencyConflict and stores nothing."""
        ...

    async def get(
        self, tenant: str, task_id: uuid.UUID, *, with_attempts: bool = True
    ) -> Task | None:
        """The tenant's task; None for an unknown id and for another tenant's task alike."""
        ...

    async def list(
        self, tenant: str, task_filter: TaskFilter, page_size: int, after: PageCursor | None
    ) -> TaskPage: ...

    async def count(self, tenant: str, finished_within: timedelta) -> dict[TaskStatus, int]:
        """Live tasks by status, and those that finished within the window."""
        ...

    async def cancel(self, tenant: str, task_id: uuid.UUID) -> Task | None:
        """Cancels a waiting task, or asks a RUNNING one to stop; None when it was terminal or
        unknown."""
        ...


class TaskPublisher(Protocol):
    """Hands a task id to the workers (a wake-up call, never state)."""

    async def publish(
        self, task_id: uuid.UUID, attempt: int, attempt_timeout: timedelta | None
    ) -> None:
        """`attempt_timeout` bounds the attempt; the broker stops a handler past it."""
        ...

    async def publish_many(self, tasks: list[tuple[uuid.UUID, int, timedelta | None]]) -> None:
        """Publishes several tasks over one broker connection, pipelined."""
        ...


class StatusEvents(Protocol):
    """Committed status changes, fanned out from the store to subscribers."""

    def subscribe(
        self, task_id: uuid.UUID
    ) -> AbstractAsyncContextManager[AsyncIterator[StatusEvent | None]]:
        """Yields events of one task; None (RESYNC) means some may have been missed."""
        ...


class TaskObserver(Protocol):
    """Told of what the use cases did (metrics); must be cheap and never raise."""

    def scheduled(self, task: Task) -> None:
        """A task was stored (not an idempotent repeat)."""
        ...

    def cancelled(self, task: Task) -> None:
        """A waiting task was cancelled (a running one is counted by the worker that stops it)."""
        ...


class NoObserver:
    def scheduled(self, task: Task) -> None:
        pass

    def cancelled(self, task: Task) -> None:
        pass
