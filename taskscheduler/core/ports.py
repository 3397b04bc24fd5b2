"""The interfaces the core needs from its adapters (the storage of tasks, attempts, queues and
schedules; the broker; status events; observers), and the values they exchange."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from taskscheduler.core.model import (
    JSON,
    NewTask,
    NewWorkflow,
    PageCursor,
    Progress,
    ProgressEvent,
    Queue,
    QueueSettings,
    QueueState,
    ResourcePosition,
    RetryPolicy,
    Schedule,
    ScheduleSpec,
    StatusEvent,
    Task,
    TaskFilter,
    TaskPage,
    TaskStatus,
    Worker,
    WorkerRegistration,
    Workflow,
    WorkflowStatus,
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


class WorkflowRepository(Protocol):
    """Durable storage of workflows; their steps are tasks of the TaskRepository."""

    async def create(self, new: NewWorkflow) -> tuple[Workflow, bool]:
        """Stores the workflow and its steps in one transaction; with a request_id already used,
        returns that workflow and False. InvalidArgument naming steps[i].task.queue for a
        queue that does not exist."""
        ...

    async def get(self, tenant: str, workflow_id: uuid.UUID) -> Workflow | None:
        """The tenant's workflow with its steps; None for an unknown id."""
        ...

    async def list(
        self,
        tenant: str,
        statuses: Collection[WorkflowStatus],
        limit: int,
        after: ResourcePosition | None,
    ) -> list[Workflow]:
        """Up to `limit` workflows, newest first, without their steps."""
        ...

    async def cancel(self, tenant: str, workflow_id: uuid.UUID) -> Workflow | None:
        """Cancels every unfinished step (asks a RUNNING one to stop); None for an unknown id."""
        ...

    async def stop_marked(self, limit: int) -> int:
        """Cancels the unfinished steps of up to `limit` workflows marked to stop (a cancel, or
        a failure under CANCEL_WORKFLOW); returns how many steps it cancelled."""
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
    ) -> AbstractAsyncContextManager[AsyncIterator[StatusEvent | ProgressEvent | None]]:
        """Yields events of one task (its status changes and progress reports), or of every
        step of a workflow given its id (status changes only); None (RESYNC) means some may
        have been missed."""
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


@dataclass(frozen=True)
class ClaimedAttempt:
    """A task a worker has claimed: the row as the claim left it."""

    task_id: uuid.UUID
    kind: str
    payload: dict[str, JSON]
    attempt: int
    retry_policy: RetryPolicy
    timeout: timedelta | None
    waited: timedelta = timedelta(0)  # from when it was due (accepted, or its run_at) to now
    tenant: str = ""
    releases_alone: bool = False
    """A dependent depends on this task alone (a chain's next step): its success releases
    it."""
    workflow_id: uuid.UUID | None = None
    step_name: str = ""
    dependency_results: Mapping[str, JSON] = field(default_factory=dict)
    """The results of the tasks it depends on, by step name (by task id outside a workflow)."""


@dataclass(frozen=True)
class ExpiredAttempt:
    """A RUNNING attempt whose worker stopped renewing its lease."""

    task_id: uuid.UUID
    attempt: int
    retry_policy: RetryPolicy
    timeout: timedelta | None
    start_time: datetime
    cancel_requested: bool


@dataclass(frozen=True)
class AttemptError:
    """Why an attempt failed, as its attempt row records it."""

    type: str
    message: str
    traceback: str = ""


@dataclass(frozen=True)
class AttemptEnd:
    """How an attempt ended, as the store records it: with a result, or with an error and the
    delay before the next attempt (None: no other attempt)."""

    task_id: uuid.UUID
    attempt: int
    result: JSON = None
    error: AttemptError | None = None
    retry_in: timedelta | None = None
    spawned: tuple[NewTask, ...] = ()
    """Steps the handler spawned: stored with the success, never with a failure."""


@dataclass(frozen=True)
class Lease:
    """Whether the attempt still holds its lease, and whether a cancel was asked for."""

    held: bool
    cancel_requested: bool


class AttemptStore(Protocol):
    """The worker's view of storage; completions are fenced by attempt number."""

    def claim(self, task_id: uuid.UUID, worker: str, lease: timedelta) -> ClaimedAttempt | None:
        """PENDING -> RUNNING with attempt + 1; None when the task is not PENDING."""
        ...

    def renew(self, task_id: uuid.UUID, attempt: int, lease: timedelta) -> Lease: ...

    def succeed(
        self, task_id: uuid.UUID, attempt: int, result: JSON, spawned: tuple[NewTask, ...] = ()
    ) -> bool:
        """RUNNING -> SUCCESS (CANCELLED when a cancel was asked for), with the steps the
        handler spawned stored in the same transaction (not when it ends CANCELLED)."""
        ...

    def queue_settings(self, tenant: str, name: str) -> QueueSettings | None:
        """A queue's settings (the defaults of a spawned step); None when it does not exist."""
        ...

    def report_progress(self, task_id: uuid.UUID, attempt: int, progress: Progress) -> bool:
        """Stores the running attempt's progress and announces it (a ProgressEvent) once
        committed; False when the attempt is no longer running."""
        ...

    def claim_released(
        self, parent_id: uuid.UUID, worker: str, lease: timedelta, queues: Sequence[str] = ()
    ) -> ClaimedAttempt | None:
        """Claims a dependent that the end of parent_id released, when its queue (one of
        `queues`; empty: any) would let it through at once; None otherwise. It never passes a
        task already waiting in its queue or at the broker: it skips only the dispatcher."""
        ...

    def fail(
        self,
        task_id: uuid.UUID,
        attempt: int,
        error: AttemptError,
        retry_in: timedelta | None,
        *,
        only_if_lease_expired: bool = False,
    ) -> bool:
        """RUNNING -> RETRYING, due `retry_in` after the database's now, or FAILED (retry_in
        None); CANCELLED instead of either when a cancel was asked for."""
        ...

    def end_and_claim(
        self, end: AttemptEnd, task_id: uuid.UUID, worker: str, lease: timedelta
    ) -> ClaimedAttempt | None:
        """Records `end` as succeed or fail does, and claims task_id as claim does, in one
        transaction: a worker running a message's tasks in turn pays one round trip and one
        commit a task, not two."""
        ...

    def expired_leases(self, limit: int) -> list[ExpiredAttempt]: ...


class ScheduleRepository(Protocol):
    """Durable storage of a tenant's schedules."""

    async def create(self, tenant: str, spec: ScheduleSpec, next_fire: datetime | None) -> Schedule:
        """Stores a schedule; without a next fire time, it is paused."""
        ...

    async def get(self, tenant: str, schedule_id: uuid.UUID) -> Schedule | None: ...

    async def list(self, tenant: str, limit: int, after: ResourcePosition | None) -> list[Schedule]:
        """Up to `limit` schedules, oldest first, after the position `after`."""
        ...

    async def update(
        self,
        tenant: str,
        schedule_id: uuid.UUID,
        spec: ScheduleSpec,
        fields: frozenset[str],
        next_fire: datetime | None,
    ) -> Schedule | None:
        """Writes the named fields; with next_fire, the schedule fires from then on."""
        ...

    async def delete(self, tenant: str, schedule_id: uuid.UUID) -> bool: ...

    async def set_paused(
        self, tenant: str, schedule_id: uuid.UUID, paused: bool, next_fire: datetime | None
    ) -> Schedule | None: ...

    async def fired(
        self, tenant: str, schedule_id: uuid.UUID, fire_time: datetime, task_id: uuid.UUID
    ) -> None:
        """Records a fire made outside the dispatcher's pass (TriggerSchedule)."""
        ...

    def due(self, limit: int) -> AbstractAsyncContextManager[DueSchedules]:
        """A transaction holding up to `limit` due schedules (and those with a buffered fire
        whose task has finished) against every other dispatcher."""
        ...


class DueSchedules(Protocol):
    """Due schedules held by one dispatcher until the end of the pass."""

    now: datetime
    schedules: list[Schedule]

    async def has_live_task(self, schedule_id: uuid.UUID) -> bool: ...

    async def advance(
        self,
        schedule_id: uuid.UUID,
        next_fire: datetime | None,
        buffered: datetime | None,
        last_fire: datetime | None,
        last_task_id: uuid.UUID | None,
    ) -> None: ...


class WorkerRegistry(Protocol):
    """A worker process's own row in the fleet (sync: called from its heartbeat thread)."""

    def register(self, registration: WorkerRegistration) -> None:
        """Writes the process's row afresh: ONLINE, started and beating now."""
        ...

    def beat(self, name: str) -> bool:
        """Records a heartbeat; False when the row is gone (forgotten while the process was
        cut off): the caller registers again."""
        ...

    def stopped(self, name: str) -> None: ...


class WorkerRepository(Protocol):
    """The fleet as the api and the dispatchers read and tidy it."""

    async def list(self, tenant: str) -> list[Worker]:
        """Every registered process, its state judged on the database's clock, with the ids of
        the tenant's tasks it runs."""
        ...

    async def forget(self, older_than: timedelta) -> int:
        """Deletes the processes STOPPED or LOST for longer than `older_than`."""
        ...


@dataclass(frozen=True)
class WaitFacts:
    """What the store knows of a task and of what may hold it back, read at one instant `now`
    (the database's clock)."""

    now: datetime
    task_id: uuid.UUID
    status: TaskStatus
    attempt: int
    max_attempts: int
    run_at: datetime
    queue: str
    concurrency_key: str
    dispatched_at: datetime | None
    worker: str | None
    lease_expires_at: datetime | None
    last_error: str
    unfinished_dependencies: tuple[uuid.UUID, ...]
    queue_state: QueueState | None
    rate_per_second: float | None
    tokens: float | None
    """The queue's token bucket now (None: no rate limit)."""
    max_concurrent: int
    max_concurrent_per_key: int
    in_flight: int
    """Tasks of the queue dispatched or running: the slots they hold."""
    key_in_flight: int
    unclaimed: int
    """Tasks of the queue with the broker, not yet claimed."""
    ready_ahead: int
    """Ready tasks of the queue before this one in dispatch order."""
    serving_workers: int
    """ONLINE worker processes that serve the queue."""


class WaitFactsReader(Protocol):
    async def read(self, tenant: str, task_id: uuid.UUID) -> WaitFacts | None:
        """None for a task the tenant does not have."""
        ...


@dataclass(frozen=True)
class FailureGroup:
    """A tenant's FAILED tasks whose last attempt ended with one error type."""

    error_type: str
    count: int
    first_finish_time: datetime
    last_finish_time: datetime
    latest_task_id: uuid.UUID
    latest_message: str


@dataclass(frozen=True)
class ActivityCounts:
    """What happened in one queue in one minute (only the minutes where something did)."""

    queue: str
    minute: datetime
    succeeded: int = 0
    failed: int = 0
    started: int = 0
    wait_p50: timedelta | None = None
    wait_p95: timedelta | None = None


class InsightsReader(Protocol):
    async def failure_groups(
        self, tenant: str, kind: str, queue: str, limit: int
    ) -> list[FailureGroup]:
        """The tenant's FAILED tasks (of the kind and queue when given) grouped by their last
        attempt's error type, most failures first."""
        ...

    async def activity(
        self, tenant: str, queue: str, minutes: int
    ) -> tuple[datetime, list[ActivityCounts]]:
        """The first of the last `minutes` minutes (the current one included), by the
        database's clock, and each minute of a queue with activity since it."""
        ...
