"""In-memory implementations of the storage interfaces of core.ports, with PostgreSQL's state
machine and guards, so that code which schedules tasks can be unit-tested without a server.

    services = InMemoryServices.create()
    task = await services.tasks.schedule(caller, ScheduleRequest(kind="demo.echo"))
    services.run_ready()  # lets due tasks through their queues and runs them here

Every store of one InMemoryDatabase sees the same tasks, attempts, queues and schedules, as the
PostgreSQL stores see one database: a status changes only from the status the real statement
expects, completions are fenced by attempt number (a stale attempt changes nothing), idempotency
keys return the first task (and free themselves after the window), listings page by keyset,
newest first, and every read is of one tenant. What is not modelled: queue rate limits (a
queue's rate never holds a task back here), the dispatch-ahead bound and lost-message repair.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from taskscheduler.core.errors import (
    IdempotencyConflict,
    InvalidArgument,
    QueueExists,
    QueueInUse,
    QueueNotFound,
    unknown_queue,
)
from taskscheduler.core.execution import (
    Interrupts,
    LeaseSettings,
    Outcome,
    TaskExecutor,
    record_end,
)
from taskscheduler.core.firer import ScheduleFirer
from taskscheduler.core.kinds import KindRegistry, load_handler_modules
from taskscheduler.core.model import (
    DEFAULT_QUEUE,
    JSON,
    Attempt,
    NewTask,
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
)
from taskscheduler.core.payloads import contains
from taskscheduler.core.ports import (
    AttemptEnd,
    AttemptError,
    ClaimedAttempt,
    ExpiredAttempt,
    Lease,
    TaskMessage,
)
from taskscheduler.core.queues import QueueDefaults, QueueManager
from taskscheduler.core.schedules import ScheduleManager
from taskscheduler.core.states import CANCELLABLE, DEPENDENCY_FAILED
from taskscheduler.core.tasks import TaskManager

S = TaskStatus
WAITING = frozenset({S.SCHEDULED, S.PENDING, S.RETRYING})
WAITING_FOR_TIMER = frozenset({S.SCHEDULED, S.RETRYING})
PURGE_ERROR = "cancelled by a purge of the queue"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Row:
    """A task as its table row holds it: the domain task and the columns only storage sees."""

    task: Task
    traceparent: str = ""
    dispatched_at: datetime | None = None
    lease_expires_at: datetime | None = None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def in_flight(self) -> bool:
        """Let through its queue and not yet finished: it counts against the queue's caps."""
        status = self.task.status
        return status is S.RUNNING or (status is S.PENDING and self.dispatched_at is not None)


@dataclass
class _Subscription:
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[StatusEvent | ProgressEvent | None]


class InMemoryDatabase:
    """The state the in-memory stores share, behind one lock (the worker's store is called from
    handler and watchdog threads); `clock` plays the database's now()."""

    def __init__(
        self,
        clock: Callable[[], datetime] = utc_now,
        idempotency_window: timedelta = timedelta(hours=24),
    ) -> None:
        self.clock = clock
        self.idempotency_window = idempotency_window
        self.lock = threading.RLock()
        self.rows: dict[uuid.UUID, _Row] = {}
        self.queues: dict[tuple[str, str], Queue] = {}
        self.schedules: dict[uuid.UUID, Schedule] = {}
        self.held_schedules: set[uuid.UUID] = set()
        self.dependents: dict[uuid.UUID, list[uuid.UUID]] = {}  # a task -> the tasks after it
        self._subscriptions: dict[uuid.UUID, list[_Subscription]] = {}

    # Tasks ---------------------------------------------------------------------------------

    def row(self, task_id: uuid.UUID, tenant: str | None = None) -> _Row | None:
        row = self.rows.get(task_id)
        if row is None or (tenant is not None and row.task.tenant != tenant):
            return None
        return row

    def task(self, row: _Row, with_attempts: bool = True) -> Task:
        """The task as a read returns it: a copy, with its attempts when asked for."""
        attempts = tuple(row.attempts) if with_attempts else ()
        return replace(row.task, payload=copy.deepcopy(row.task.payload), attempts=attempts)

    def update(self, row: _Row, **changes: object) -> None:
        """One UPDATE of the row: updated_at moves; a status change bumps the version and is
        announced, as the table's triggers do."""
        old = row.task.status
        task = replace(row.task, update_time=self.clock(), **changes)  # type: ignore[arg-type]
        if task.status is not old:
            task = replace(task, version=task.version + 1)
        row.task = task
        if task.status is not old:
            self.announce(task)
            if task.status.is_terminal:
                self._settle_dependents(task)

    def _settle_dependents(self, task: Task) -> None:
        """What the settle_dependents trigger does at a task's end: its success releases each
        BLOCKED dependent whose dependencies have all succeeded; a failure or cancel cancels
        them (and, through their own ends, the tasks after them)."""
        for dependent_id in self.dependents.get(task.id, []):
            dependent = self.rows.get(dependent_id)
            if dependent is None or dependent.task.status is not S.BLOCKED:
                continue
            if task.status is not S.SUCCESS:
                error = f"{DEPENDENCY_FAILED}: dependency {task.id} ended {task.status.value}"
                self.update(dependent, status=S.CANCELLED, finish_time=self.clock(), error=error)
                continue
            parents = [self.rows[parent] for parent in dependent.task.depends_on]
            if all(parent.task.status is S.SUCCESS for parent in parents):
                due_later = dependent.task.run_at > self.clock()
                self.update(dependent, status=S.SCHEDULED if due_later else S.PENDING)

    def blocked_status(self, new: NewTask) -> NewTask:
        """The task with the status its dependencies give it (see dependencies.py); raises
        InvalidArgument naming depends_on[i] for an id of no task of the tenant."""
        statuses: list[TaskStatus] = []
        for index, parent in enumerate(new.depends_on):
            row = self.row(parent, new.tenant)
            if row is None:
                raise InvalidArgument(f"depends_on[{index}]", f"no task {parent}")
            statuses.append(row.task.status)
        if any(status in (S.FAILED, S.CANCELLED) for status in statuses):
            return replace(new, status=S.CANCELLED)
        waiting = sum(status is not S.SUCCESS for status in statuses)
        return replace(new, status=S.BLOCKED if waiting else new.status, blocked_on=waiting)

    def insert(self, new: NewTask) -> Task:
        now = self.clock()
        task = Task(
            id=new.id,
            tenant=new.tenant,
            kind=new.kind,
            payload=copy.deepcopy(new.payload),
            status=new.status,
            attempt=0,
            retry_policy=new.retry_policy,
            timeout=new.timeout,
            run_at=new.run_at,
            create_time=now,
            update_time=now,
            request_id=new.request_id,
            request_fingerprint=new.request_fingerprint,
            queue=new.queue,
            priority=new.priority,
            concurrency_key=new.concurrency_key,
            schedule_id=new.schedule_id,
            fire_time=new.fire_time,
            depends_on=new.depends_on,
        )
        if task.status is S.CANCELLED:  # a dependency had failed or been cancelled
            error = f"{DEPENDENCY_FAILED}: a dependency had failed or been cancelled"
            task = replace(task, finish_time=now, error=error)
        self.rows[task.id] = _Row(task, traceparent=new.traceparent)
        for parent in new.depends_on:
            self.dependents.setdefault(parent, []).append(task.id)
        self.announce(task)
        return self.task(self.rows[task.id], with_attempts=False)

    def with_key(self, tenant: str, request_id: str) -> _Row | None:
        """The task stored under an idempotency key; a key older than the window is freed
        first, so that it can name a new task."""
        if not request_id:
            return None
        for row in self.rows.values():
            task = row.task
            if task.tenant != tenant or task.request_id != request_id:
                continue
            if task.create_time < self.clock() - self.idempotency_window:
                row.task = replace(task, request_id="", request_fingerprint="")
                return None
            return row
        return None

    def missing_queue(self, tenant: str, names: set[str]) -> str | None:
        """The first named queue that does not exist (the default one always does)."""
        missing = sorted(
            name for name in names if name != DEFAULT_QUEUE and (tenant, name) not in self.queues
        )
        return missing[0] if missing else None

    # Status events -------------------------------------------------------------------------

    def announce(self, task: Task) -> None:
        event = StatusEvent(task.id, task.status, task.attempt, task.version, task.update_time)
        for subscription in self._subscriptions.get(task.id, []):
            subscription.loop.call_soon_threadsafe(subscription.events.put_nowait, event)

    def announce_progress(self, event: ProgressEvent) -> None:
        for subscription in self._subscriptions.get(event.task_id, []):
            subscription.loop.call_soon_threadsafe(subscription.events.put_nowait, event)

    @contextmanager
    def subscribed(self, task_id: uuid.UUID) -> Iterator[_Subscription]:
        subscription = _Subscription(asyncio.get_running_loop(), asyncio.Queue())
        with self.lock:
            self._subscriptions.setdefault(task_id, []).append(subscription)
        try:
            yield subscription
        finally:
            with self.lock:
                self._subscriptions[task_id].remove(subscription)
                if not self._subscriptions[task_id]:
                    del self._subscriptions[task_id]

    # Queues --------------------------------------------------------------------------------

    def queue(self, tenant: str, name: str, counted: bool = True) -> Queue | None:
        if name == DEFAULT_QUEUE:
            self.ensure_default(tenant)
        queue = self.queues.get((tenant, name))
        if queue is None or not counted:
            return queue
        of_queue = [row.task for row in self.rows.values() if _of_queue(row.task, tenant, name)]
        waiting = sum(task.status in WAITING for task in of_queue)
        running = sum(task.status is S.RUNNING for task in of_queue)
        return replace(queue, waiting=waiting, running=running)

    def ensure_default(self, tenant: str) -> None:
        if (tenant, DEFAULT_QUEUE) not in self.queues:
            now = self.clock()
            self.queues[(tenant, DEFAULT_QUEUE)] = Queue(
                tenant, DEFAULT_QUEUE, QueueState.RUNNING, QueueSettings(), now, now
            )

    # The dispatcher's pass -----------------------------------------------------------------

    def dispatch(self) -> list[TaskMessage]:
        """What a dispatcher's pass does: due SCHEDULED and RETRYING tasks become PENDING, and
        ready tasks are let through their queues (running ones, within their concurrency caps),
        by priority, then run_at, then age; returns the messages to publish."""
        with self.lock:
            now = self.clock()
            for row in list(self.rows.values()):
                if row.task.status in WAITING_FOR_TIMER and row.task.run_at <= now:
                    row.dispatched_at = None
                    self.update(row, status=S.PENDING)
            messages: list[TaskMessage] = []
            for row in sorted(self._ready(), key=_dispatch_order):
                if self._has_room(row):
                    row.dispatched_at = now
                    messages.append(_message(row))
            return messages

    def _ready(self) -> list[_Row]:
        return [
            row
            for row in self.rows.values()
            if row.task.status is S.PENDING and row.dispatched_at is None
        ]

    def _has_room(self, row: _Row) -> bool:
        task = row.task
        queue = self.queue(task.tenant, task.queue, counted=False)
        if queue is None or queue.state is QueueState.PAUSED:
            return False
        holding = [
            other.task
            for other in self.rows.values()
            if other.in_flight and _of_queue(other.task, task.tenant, task.queue)
        ]
        settings = queue.settings
        if settings.max_concurrent and len(holding) >= settings.max_concurrent:
            return False
        per_key = settings.max_concurrent_per_key
        if per_key and task.concurrency_key:
            same_key = [other for other in holding if other.concurrency_key == task.concurrency_key]
            return len(same_key) < per_key
        return True

    def has_live_task(self, schedule_id: uuid.UUID) -> bool:
        return any(
            row.task.schedule_id == schedule_id and not row.task.status.is_terminal
            for row in self.rows.values()
        )


def _of_queue(task: Task, tenant: str, name: str) -> bool:
    return task.tenant == tenant and task.queue == name


def _dispatch_order(row: _Row) -> tuple[int, datetime, datetime]:
    return (-row.task.priority, row.task.run_at, row.task.create_time)


def _message(row: _Row) -> TaskMessage:
    task = row.task
    return TaskMessage(task.id, task.attempt + 1, task.timeout, task.queue, row.traceparent)


class InMemoryTaskRepository:
    """Implements core.ports.TaskRepository."""

    def __init__(self, database: InMemoryDatabase) -> None:
        self._db = database

    async def insert(self, new: NewTask) -> tuple[Task, bool]:
        _refuse_workflows([new])
        with self._db.lock:
            missing = self._db.missing_queue(new.tenant, {new.queue})
            if missing is not None:
                raise unknown_queue("queue", missing)
            existing = self._db.with_key(new.tenant, new.request_id)
            if existing is not None:
                return self._db.task(existing), False
            return self._db.insert(self._db.blocked_status(new)), True

    async def insert_many(self, news: list[NewTask]) -> list[tuple[Task, bool]]:
        if not news:
            return []
        _refuse_workflows(news)
        tenant = news[0].tenant
        with self._db.lock:
            missing = self._db.missing_queue(tenant, {new.queue for new in news})
            if missing is not None:
                raise unknown_queue("queue", missing)
            existing = {new.id: self._db.with_key(tenant, new.request_id) for new in news}
            for new in news:  # all or none: every conflict is found before anything is stored
                row = existing[new.id]
                if row is not None and row.task.request_fingerprint != new.request_fingerprint:
                    raise IdempotencyConflict(
                        f"request_id {new.request_id!r} was already used for a different request"
                    )
            return [self._stored(new, existing[new.id]) for new in news]

    def _stored(self, new: NewTask, existing: _Row | None) -> tuple[Task, bool]:
        if existing is not None:
            return self._db.task(existing, with_attempts=False), False
        return self._db.insert(self._db.blocked_status(new)), True

    async def get(
        self, tenant: str, task_id: uuid.UUID, *, with_attempts: bool = True
    ) -> Task | None:
        with self._db.lock:
            row = self._db.row(task_id, tenant)
            return None if row is None else self._db.task(row, with_attempts)

    async def list(
        self, tenant: str, task_filter: TaskFilter, page_size: int, after: PageCursor | None
    ) -> TaskPage:
        with self._db.lock:
            found = [
                self._db.task(row, with_attempts=False)
                for row in self._db.rows.values()
                if _matches(row, tenant, task_filter, after)
            ]
        found.sort(key=lambda task: (task.create_time, task.id), reverse=True)
        page = found[:page_size]
        has_more = len(found) > page_size
        cursor = PageCursor(page[-1].create_time, page[-1].id) if has_more else None
        return TaskPage(page, cursor)

    async def count(self, tenant: str, finished_within: timedelta) -> dict[TaskStatus, int]:
        counts = dict.fromkeys(TaskStatus, 0)
        with self._db.lock:
            since = self._db.clock() - finished_within
            for row in self._db.rows.values():
                task = row.task
                if task.tenant != tenant:
                    continue
                if task.status.is_terminal and (
                    task.finish_time is None or task.finish_time < since
                ):
                    continue
                counts[task.status] += 1
        return counts

    async def cancel(self, tenant: str, task_id: uuid.UUID) -> Task | None:
        with self._db.lock:
            row = self._db.row(task_id, tenant)
            if row is None or row.task.status not in CANCELLABLE:
                return None
            if row.task.status is S.RUNNING:
                # Only asked to stop: its worker records CANCELLED once the handler returned.
                self._db.update(row, cancel_requested=True)
            else:
                self._db.update(
                    row, status=S.CANCELLED, finish_time=self._db.clock(), cancel_requested=True
                )
            return self._db.task(row)


def _matches(row: _Row, tenant: str, task_filter: TaskFilter, after: PageCursor | None) -> bool:
    task = row.task
    if task.tenant != tenant:
        return False
    if task_filter.statuses and task.status not in task_filter.statuses:
        return False
    if task_filter.kind and task.kind != task_filter.kind:
        return False
    if task_filter.queue and task.queue != task_filter.queue:
        return False
    if task_filter.schedule_id is not None and task.schedule_id != task_filter.schedule_id:
        return False
    if task_filter.id_range is not None:
        low, high = task_filter.id_range
        if task.id < low or (high is not None and task.id >= high):
            return False
    if task_filter.error_type and _last_error_type(row) != task_filter.error_type:
        return False
    if task_filter.payload_contains is not None and not contains(
        task.payload, task_filter.payload_contains
    ):
        return False
    if not _within(task.create_time, task_filter.created_after, task_filter.created_before):
        return False
    if task_filter.finished_after or task_filter.finished_before:
        finished = task.finish_time
        if finished is None:
            return False
        if not _within(finished, task_filter.finished_after, task_filter.finished_before):
            return False
    return after is None or (task.create_time, task.id) < (after.create_time, after.task_id)


def _last_error_type(row: _Row) -> str:
    last = [attempt for attempt in row.attempts if attempt.number == row.task.attempt]
    return last[0].error_type if last else ""


def _within(time: datetime, after: datetime | None, before: datetime | None) -> bool:
    return (after is None or time >= after) and (before is None or time < before)


class InMemoryAttemptStore:
    """Implements core.ports.AttemptStore; every write after the claim is fenced by the
    attempt number, as PostgreSQL's are."""

    def __init__(self, database: InMemoryDatabase) -> None:
        self._db = database

    def claim(self, task_id: uuid.UUID, worker: str, lease: timedelta) -> ClaimedAttempt | None:
        with self._db.lock:
            row = self._db.row(task_id)
            if row is None or row.task.status is not S.PENDING or row.dispatched_at is None:
                return None  # not let through its queue (or taken back by a pause): not yet
            if row.task.attempt >= row.task.max_attempts:
                return None
            now = self._db.clock()
            number = row.task.attempt + 1
            row.lease_expires_at = now + lease
            row.attempts.append(Attempt(number, S.RUNNING, worker, now))
            self._db.update(row, status=S.RUNNING, attempt=number, start_time=now)
            task = row.task
            return ClaimedAttempt(
                task_id=task.id,
                kind=task.kind,
                payload=copy.deepcopy(task.payload),
                attempt=number,
                retry_policy=task.retry_policy,
                timeout=task.timeout,
                waited=now - max(task.create_time, task.run_at),
                tenant=task.tenant,
                dependency_results={
                    str(parent): copy.deepcopy(self._db.rows[parent].task.result)
                    for parent in task.depends_on
                    if parent in self._db.rows
                },
            )

    def claim_released(
        self, parent_id: uuid.UUID, worker: str, lease: timedelta, queues: Sequence[str] = ()
    ) -> ClaimedAttempt | None:
        """The in-memory store keeps no dependencies: nothing is ever released."""
        return None

    def queue_settings(self, tenant: str, name: str) -> QueueSettings | None:
        with self._db.lock:
            queue = self._db.queue(tenant, name, counted=False)
            return None if queue is None else queue.settings

    def _this_attempt(self, task_id: uuid.UUID, attempt: int) -> _Row | None:
        """The fence: only the worker running this very attempt may change the row."""
        row = self._db.row(task_id)
        if row is None or row.task.status is not S.RUNNING or row.task.attempt != attempt:
            return None
        return row

    def report_progress(self, task_id: uuid.UUID, attempt: int, progress: Progress) -> bool:
        with self._db.lock:
            row = self._this_attempt(task_id, attempt)
            if row is None:
                return False
            stored = replace(progress, update_time=self._db.clock())
            row.task = replace(row.task, progress=stored)
            self._db.announce_progress(ProgressEvent(task_id, attempt, stored))
            return True

    def renew(self, task_id: uuid.UUID, attempt: int, lease: timedelta) -> Lease:
        with self._db.lock:
            row = self._this_attempt(task_id, attempt)
            if row is None:
                return Lease(held=False, cancel_requested=False)
            row.lease_expires_at = self._db.clock() + lease
            return Lease(held=True, cancel_requested=row.task.cancel_requested)

    def succeed(
        self, task_id: uuid.UUID, attempt: int, result: JSON, spawned: tuple[NewTask, ...] = ()
    ) -> bool:
        if spawned:
            raise NotImplementedError("the in-memory store keeps no workflows to spawn into")
        with self._db.lock:
            row = self._this_attempt(task_id, attempt)
            if row is None:
                return False
            cancelled = row.task.cancel_requested
            status = S.CANCELLED if cancelled else S.SUCCESS
            now = self._db.clock()
            self._db.update(
                row,
                status=status,
                result=None if cancelled else copy.deepcopy(result),
                error="",
                finish_time=now,
            )
            self._finish_attempt(row, attempt, status, AttemptError("", ""))
            return True

    def fail(
        self,
        task_id: uuid.UUID,
        attempt: int,
        error: AttemptError,
        retry_in: timedelta | None,
        *,
        only_if_lease_expired: bool = False,
    ) -> bool:
        with self._db.lock:
            row = self._this_attempt(task_id, attempt)
            now = self._db.clock()
            if row is None:
                return False
            if only_if_lease_expired and not (
                row.lease_expires_at is not None and row.lease_expires_at < now
            ):
                return False
            task = row.task
            status = _failed_status(task, retry_in)
            run_at = task.run_at
            if status is S.RETRYING and retry_in is not None:
                run_at = now + retry_in
            self._db.update(
                row,
                status=status,
                error=f"{error.type}: {error.message}",
                finish_time=None if status is S.RETRYING else now,
                run_at=run_at,
            )
            recorded = S.CANCELLED if status is S.CANCELLED else S.FAILED
            self._finish_attempt(row, attempt, recorded, error)
            return True

    def end_and_claim(
        self, end: AttemptEnd, task_id: uuid.UUID, worker: str, lease: timedelta
    ) -> ClaimedAttempt | None:
        with self._db.lock:  # one transaction: nobody sees the end without the claim
            record_end(self, end)
            return self.claim(task_id, worker, lease)

    def _finish_attempt(
        self, row: _Row, number: int, status: TaskStatus, error: AttemptError
    ) -> None:
        row.attempts = [
            replace(
                recorded,
                status=status,
                finish_time=row.task.update_time,
                error_type=error.type,
                error_message=error.message,
                traceback=error.traceback,
            )
            if recorded.number == number
            else recorded
            for recorded in row.attempts
        ]

    def expired_leases(self, limit: int) -> list[ExpiredAttempt]:
        with self._db.lock:
            now = self._db.clock()
            expired = [
                row
                for row in self._db.rows.values()
                if row.task.status is S.RUNNING
                and row.lease_expires_at is not None
                and row.lease_expires_at < now
            ]
            expired.sort(key=lambda row: row.lease_expires_at or now)
            return [_expired(row) for row in expired[:limit]]


def _failed_status(task: Task, retry_in: timedelta | None) -> TaskStatus:
    """CANCELLED when a cancel was asked for, else RETRYING while attempts are left (the row
    has the last word: no retry past max_attempts, whatever the caller computed), else FAILED."""
    if task.cancel_requested:
        return S.CANCELLED
    retrying = retry_in is not None and task.attempt < task.max_attempts
    return S.RETRYING if retrying else S.FAILED


def _expired(row: _Row) -> ExpiredAttempt:
    task = row.task
    assert task.start_time is not None  # a RUNNING task has started
    return ExpiredAttempt(
        task_id=task.id,
        attempt=task.attempt,
        retry_policy=task.retry_policy,
        timeout=task.timeout,
        start_time=task.start_time,
        cancel_requested=task.cancel_requested,
    )


class InMemoryQueueRepository:
    """Implements core.ports.QueueRepository; a tenant's `default` queue appears when first
    needed."""

    def __init__(self, database: InMemoryDatabase) -> None:
        self._db = database

    async def create(self, tenant: str, name: str, settings: QueueSettings) -> Queue:
        with self._db.lock:
            if name == DEFAULT_QUEUE:
                self._db.ensure_default(tenant)
            if (tenant, name) in self._db.queues:
                raise QueueExists(name)
            now = self._db.clock()
            queue = Queue(tenant, name, QueueState.RUNNING, settings, now, now)
            self._db.queues[(tenant, name)] = queue
            return queue

    async def get(self, tenant: str, name: str) -> Queue | None:
        with self._db.lock:
            return self._db.queue(tenant, name)

    async def get_for_tasks(self, tenant: str, name: str) -> Queue | None:
        with self._db.lock:
            return self._db.queue(tenant, name, counted=False)

    async def list(self, tenant: str, limit: int, after: str) -> list[Queue]:
        with self._db.lock:
            self._db.ensure_default(tenant)
            names = sorted(
                name for owner, name in self._db.queues if owner == tenant and name > after
            )
            return [self._counted(tenant, name) for name in names[:limit]]

    def _counted(self, tenant: str, name: str) -> Queue:
        queue = self._db.queue(tenant, name)
        assert queue is not None  # read under the lock that listed it
        return queue

    async def update(
        self, tenant: str, name: str, settings: QueueSettings, fields: frozenset[str]
    ) -> Queue | None:
        with self._db.lock:
            queue = self._db.queue(tenant, name, counted=False)
            if queue is None:
                return None
            changed = replace(queue.settings, **{each: getattr(settings, each) for each in fields})
            self._db.queues[(tenant, name)] = replace(
                queue, settings=changed, update_time=self._db.clock()
            )
            return self._db.queue(tenant, name)

    async def delete(self, tenant: str, name: str) -> None:
        with self._db.lock:
            if (tenant, name) not in self._db.queues:
                raise QueueNotFound(name)
            live = WAITING | {S.RUNNING}
            if any(
                _of_queue(row.task, tenant, name) and row.task.status in live
                for row in self._db.rows.values()
            ):
                raise QueueInUse(
                    f"tasks of queue {name!r} still wait or run: purge it, or let them finish"
                )
            if any(
                schedule.tenant == tenant and schedule.spec.task.queue == name
                for schedule in self._db.schedules.values()
            ):
                raise QueueInUse(f"schedules make tasks in queue {name!r}: change them first")
            del self._db.queues[(tenant, name)]

    async def set_state(self, tenant: str, name: str, state: QueueState) -> Queue | None:
        with self._db.lock:
            queue = self._db.queue(tenant, name, counted=False)
            if queue is None:
                return None
            self._db.queues[(tenant, name)] = replace(
                queue, state=state, update_time=self._db.clock()
            )
            if state is QueueState.PAUSED:
                # Let through but not claimed: they wait again, and their message finds them
                # not dispatched.
                for row in self._db.rows.values():
                    if _of_queue(row.task, tenant, name) and row.task.status is S.PENDING:
                        row.dispatched_at = None
            return self._db.queue(tenant, name)

    async def purge(self, tenant: str, name: str) -> int | None:
        with self._db.lock:
            if self._db.queue(tenant, name, counted=False) is None:
                return None
            purged = 0
            for row in self._db.rows.values():
                if _of_queue(row.task, tenant, name) and row.task.status in WAITING:
                    self._db.update(
                        row,
                        status=S.CANCELLED,
                        finish_time=self._db.clock(),
                        cancel_requested=True,
                        error=PURGE_ERROR,
                    )
                    purged += 1
            return purged


class InMemoryScheduleRepository:
    """Implements core.ports.ScheduleRepository."""

    def __init__(self, database: InMemoryDatabase) -> None:
        self._db = database

    async def create(self, tenant: str, spec: ScheduleSpec, next_fire: datetime | None) -> Schedule:
        with self._db.lock:
            self._hold_queue(tenant, spec)
            now = self._db.clock()
            schedule = Schedule(uuid.uuid4(), tenant, spec, next_fire is None, next_fire, now, now)
            self._db.schedules[schedule.id] = schedule
            return schedule

    def _hold_queue(self, tenant: str, spec: ScheduleSpec) -> None:
        missing = self._db.missing_queue(tenant, {spec.task.queue})
        if missing is not None:
            raise unknown_queue("task.queue", missing)

    def _of_tenant(self, tenant: str, schedule_id: uuid.UUID) -> Schedule | None:
        schedule = self._db.schedules.get(schedule_id)
        return schedule if schedule is not None and schedule.tenant == tenant else None

    async def get(self, tenant: str, schedule_id: uuid.UUID) -> Schedule | None:
        with self._db.lock:
            return self._of_tenant(tenant, schedule_id)

    async def list(self, tenant: str, limit: int, after: ResourcePosition | None) -> list[Schedule]:
        with self._db.lock:
            found = [
                schedule
                for schedule in self._db.schedules.values()
                if schedule.tenant == tenant
                and (
                    after is None
                    or (schedule.create_time, schedule.id) > (after.create_time, after.resource_id)
                )
            ]
        found.sort(key=lambda schedule: (schedule.create_time, schedule.id))
        return found[:limit]

    async def update(
        self,
        tenant: str,
        schedule_id: uuid.UUID,
        spec: ScheduleSpec,
        fields: frozenset[str],
        next_fire: datetime | None,
    ) -> Schedule | None:
        with self._db.lock:
            if "task" in fields:
                self._hold_queue(tenant, spec)
            return self._write(
                tenant,
                schedule_id,
                lambda current: replace(
                    current,
                    spec=replace(current.spec, **{name: getattr(spec, name) for name in fields}),
                    next_fire_time=current.next_fire_time if next_fire is None else next_fire,
                ),
            )

    def _write(
        self, tenant: str, schedule_id: uuid.UUID, change: Callable[[Schedule], Schedule]
    ) -> Schedule | None:
        current = self._of_tenant(tenant, schedule_id)
        if current is None:
            return None
        written = replace(change(current), update_time=self._db.clock())
        self._db.schedules[schedule_id] = written
        return written

    async def delete(self, tenant: str, schedule_id: uuid.UUID) -> bool:
        with self._db.lock:
            if self._of_tenant(tenant, schedule_id) is None:
                return False
            del self._db.schedules[schedule_id]
            return True

    async def set_paused(
        self, tenant: str, schedule_id: uuid.UUID, paused: bool, next_fire: datetime | None
    ) -> Schedule | None:
        with self._db.lock:
            return self._write(
                tenant,
                schedule_id,
                lambda current: replace(
                    current, paused=paused, next_fire_time=next_fire, buffered_fire_time=None
                ),
            )

    async def fired(
        self, tenant: str, schedule_id: uuid.UUID, fire_time: datetime, task_id: uuid.UUID
    ) -> None:
        with self._db.lock:
            self._write(
                tenant,
                schedule_id,
                lambda current: replace(current, last_fire_time=fire_time, last_task_id=task_id),
            )

    @asynccontextmanager
    async def due(self, limit: int) -> AsyncIterator[InMemoryDueSchedules]:
        with self._db.lock:
            now = self._db.clock()
            due = [
                schedule
                for schedule in self._db.schedules.values()
                if schedule.id not in self._db.held_schedules and self._is_due(schedule, now)
            ]
            # Ordered by next fire, those without one last (as PostgreSQL orders NULLs).
            due.sort(
                key=lambda schedule: (
                    schedule.next_fire_time is None,
                    schedule.next_fire_time or now,
                )
            )
            held = due[:limit]
            self._db.held_schedules.update(schedule.id for schedule in held)
        try:
            yield InMemoryDueSchedules(self._db, now, held)
        finally:
            with self._db.lock:
                self._db.held_schedules.difference_update(schedule.id for schedule in held)

    def _is_due(self, schedule: Schedule, now: datetime) -> bool:
        fire = schedule.next_fire_time
        if not schedule.paused and fire is not None and fire <= now:
            return True
        return schedule.buffered_fire_time is not None and not self._db.has_live_task(schedule.id)


class InMemoryDueSchedules:
    """Implements core.ports.DueSchedules: the schedules one pass holds (skipped by any other
    pass until it ends, as SKIP LOCKED skips them)."""

    def __init__(self, database: InMemoryDatabase, now: datetime, held: list[Schedule]) -> None:
        self._db = database
        self.now = now
        self.schedules = held

    async def has_live_task(self, schedule_id: uuid.UUID) -> bool:
        with self._db.lock:
            return self._db.has_live_task(schedule_id)

    async def advance(
        self,
        schedule_id: uuid.UUID,
        next_fire: datetime | None,
        buffered: datetime | None,
        last_fire: datetime | None,
        last_task_id: uuid.UUID | None,
    ) -> None:
        with self._db.lock:
            current = self._db.schedules.get(schedule_id)
            if current is None:
                return
            self._db.schedules[schedule_id] = replace(
                current,
                next_fire_time=next_fire,
                buffered_fire_time=buffered,
                last_fire_time=last_fire,
                last_task_id=last_task_id,
            )


class InMemoryStatusEvents:
    """Implements core.ports.StatusEvents: every status change the stores make, as it is made
    (they commit at once)."""

    def __init__(self, database: InMemoryDatabase) -> None:
        self._db = database

    @asynccontextmanager
    async def subscribe(
        self, task_id: uuid.UUID
    ) -> AsyncIterator[AsyncIterator[StatusEvent | ProgressEvent | None]]:
        with self._db.subscribed(task_id) as subscription:
            yield _drain(subscription.events)


async def _drain(
    events: asyncio.Queue[StatusEvent | ProgressEvent | None],
) -> AsyncIterator[StatusEvent | ProgressEvent | None]:
    while True:
        yield await events.get()


def _refuse_workflows(news: list[NewTask]) -> None:
    """Workflows are the PostgreSQL store's alone for now (a test of them runs on it); a task's
    own dependencies (depends_on) are kept here too."""
    if any(new.workflow_id is not None for new in news):
        raise NotImplementedError("the in-memory store keeps no workflows")


class InMemoryPublisher:
    """Implements core.ports.TaskPublisher: keeps what it was given, in order."""

    def __init__(self) -> None:
        self.messages: list[TaskMessage] = []

    async def publish_many(
        self, messages: list[TaskMessage], backlog: Mapping[str, int] | None = None
    ) -> None:
        self.messages.extend(messages)


def _no_interrupt() -> None:
    """In one process there is no signal to raise in a handler: it stops when it checks its
    context's cancel_requested."""


@dataclass
class InMemoryServices:
    """The use cases wired to in-memory stores of one database, as services/api and the
    dispatcher wire them to PostgreSQL; `run_ready` plays the dispatcher and a worker."""

    database: InMemoryDatabase
    kinds: KindRegistry
    tasks: TaskManager
    queues: QueueManager
    schedules: ScheduleManager
    firer: ScheduleFirer
    attempts: InMemoryAttemptStore

    @classmethod
    def create(
        cls,
        kinds: KindRegistry | None = None,
        default_retry_policy: RetryPolicy | None = None,
        database: InMemoryDatabase | None = None,
    ) -> InMemoryServices:
        """`kinds`: the built-in ones unless given. Queue settings apply to the next task at
        once (no cache, unlike the api's one second)."""
        database = InMemoryDatabase() if database is None else database
        kinds = load_handler_modules() if kinds is None else kinds
        queue_repository = InMemoryQueueRepository(database)
        tasks = TaskManager(
            InMemoryTaskRepository(database),
            QueueDefaults(queue_repository, ttl_seconds=0),
            InMemoryStatusEvents(database),
            kinds,
            default_retry_policy or RetryPolicy(),
        )
        schedule_repository = InMemoryScheduleRepository(database)
        return cls(
            database=database,
            kinds=kinds,
            tasks=tasks,
            queues=QueueManager(queue_repository),
            schedules=ScheduleManager(schedule_repository, tasks),
            firer=ScheduleFirer(schedule_repository, tasks),
            attempts=InMemoryAttemptStore(database),
        )

    def executor(
        self,
        worker: str = "in-memory-worker",
        lease: LeaseSettings | None = None,
        interrupts: Interrupts | None = None,
    ) -> TaskExecutor:
        return TaskExecutor(
            self.attempts,
            self.kinds,
            worker,
            lease or LeaseSettings(timedelta(seconds=30), timedelta(seconds=5)),
            interrupts or Interrupts(_no_interrupt, _no_interrupt),
        )

    def run_ready(self, executor: TaskExecutor | None = None) -> list[Outcome]:
        """One dispatcher pass, then each task it let through run by `executor` in this
        thread, in order; a task that fails and is due again at once runs at the next call."""
        executor = executor or self.executor()
        return [executor.execute(message.task_id) for message in self.database.dispatch()]
