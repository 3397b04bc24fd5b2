"""The interfaces the core needs from its adapters (storage, broker, status events)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from taskscheduler.core.model import (
    NewTask,
    PageCursor,
    Queue,
    QueueSettings,
    QueueState,
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


class QueueRepository(Protocol):
    """Durable storage of a tenant's queues; `default` appears when first needed."""

    async def create(self, tenant: str, name: str, settings: QueueSettings) -> Queue:
        """Raises QueueExists when the name is taken."""
        ...

    async def get(self, tenant: str, name: str) -> Queue | None:
        """The queue with its counts of waiting and running tasks."""
        ...

    async def get_for_tasks(self, tenant: str, name: str) -> Queue | None:
        """The queue without counts, the default one created if need be."""
        ...

    async def list(self, tenant: str, limit: int, after: str) -> list[Queue]:
        """Up to `limit` queues by name, after the name `after`."""
        ...

    async def update(
        self, tenant: str, name: str, settings: QueueSettings, fields: frozenset[str]
    ) -> Queue | None:
        """Writes the named fields of `settings`; None for an unknown queue."""
        ...

    async def delete(self, tenant: str, name: str) -> None:
        """Raises QueueNotFound, or QueueInUse while tasks of the queue wait or run."""
        ...

    async def set_state(self, tenant: str, name: str, state: QueueState) -> Queue | None: ...

    async def purge(self, tenant: str, name: str) -> int | None:
        """Cancels the queue's waiting tasks and counts them; None for an unknown queue."""
        ...


@dataclass(frozen=True)
class TaskMessage:
    """What the broker carries to a worker: a wake-up call, never state."""

    task_id: uuid.UUID
    attempt: int
    timeout: timedelta | None
    """Bounds the attempt; the broker stops a handler past it."""
    queue: str
    traceparent: str = ""
    """The W3C traceparent of the call that scheduled the task (empty: none)."""


class TaskPublisher(Protocol):
    """Hands tasks to the workers of their queues."""

    async def publish_many(
        self, messages: list[TaskMessage], backlog: Mapping[str, int] | None = None
    ) -> None:
        """Publishes several tasks over one broker connection, pipelined. `backlog`: per queue
        name, the tasks already with the broker and unclaimed; the deeper it is, the more task
        ids one message may carry."""
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
