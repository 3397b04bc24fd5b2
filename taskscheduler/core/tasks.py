"""The use cases of the api: schedule, get, list, cancel and watch tasks."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from taskscheduler.core import paging, retry, states
from taskscheduler.core.errors import (
    IdempotencyConflict,
    InvalidArgument,
    TaskFinished,
    TaskNotFinished,
    TaskNotFound,
)
from taskscheduler.core.kinds import KindRegistry
from taskscheduler.core.limits import (
    MAX_BATCH_SIZE,
    MAX_CONCURRENCY_KEY_LENGTH,
    MAX_COUNT_WINDOW,
    MAX_DEPENDS_ON,
    MAX_ERROR_TYPE_LENGTH,
    MAX_KIND_LENGTH,
    MAX_PRIORITY,
    MAX_REQUEST_ID_LENGTH,
    MIN_PRIORITY,
)
from taskscheduler.core.model import (
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    JSON,
    READ_SCOPE,
    WRITE_SCOPE,
    Caller,
    NewTask,
    ProgressEvent,
    QueueSettings,
    RetryPolicy,
    RetryPolicyOverride,
    StatusEvent,
    Task,
    TaskFilter,
    TaskStatus,
)
from taskscheduler.core.payloads import check_json, check_payload, check_text
from taskscheduler.core.permissions import require
from taskscheduler.core.ports import (
    RESYNC,
    NoObserver,
    StatusEvents,
    TaskObserver,
    TaskRepository,
)
from taskscheduler.core.queues import QueueDefaults, check_queue_name
from taskscheduler.logs import current_traceparent

DEFAULT_COUNT_WINDOW = timedelta(hours=1)

TaskChange = tuple[StatusEvent, Task] | ProgressEvent
"""What watching a task yields: a status change with the task as it stands, or a progress
report of its running attempt."""


@dataclass(frozen=True)
class ScheduleRequest:
    """What a caller asks for; validated and completed by TaskManager.schedule."""

    kind: str
    payload: dict[str, JSON] = field(default_factory=dict)
    run_at: datetime | None = None
    retry_policy: RetryPolicyOverride = field(default_factory=RetryPolicyOverride)
    timeout: timedelta | None = None
    request_id: str = ""
    queue: str = ""
    """Empty means the default queue."""
    priority: int | None = None
    concurrency_key: str = ""
    schedule_id: uuid.UUID | None = None
    """With fire_time: the schedule whose fire makes the task (set by the schedules only)."""
    fire_time: datetime | None = None
    depends_on: tuple[str, ...] = ()
    """Ids of the caller's tasks that must succeed first."""


@dataclass(frozen=True)
class ListRequest:
    task_filter: TaskFilter = field(default_factory=TaskFilter)
    page_size: int = 0
    page_token: str = ""


def check_filter(task_filter: TaskFilter, prefix: str = "") -> None:
    """Refuses a filter's text fields that no task could match or SQL could not hold; `prefix`
    is where the fields are in the request ("filter." in a bulk action's)."""
    for name, text, most in (
        ("kind", task_filter.kind, MAX_KIND_LENGTH),
        ("error_type", task_filter.error_type, MAX_ERROR_TYPE_LENGTH),
    ):
        if len(text) > most:
            raise InvalidArgument(prefix + name, f"must be at most {most} characters")
        check_text(text, prefix + name)
    if task_filter.queue:
        check_queue_name(task_filter.queue, prefix + "queue")
    if task_filter.payload_contains is not None:
        check_json(task_filter.payload_contains, prefix + "payload_contains")


@dataclass(frozen=True)
class ListResult:
    tasks: list[Task]
    next_page_token: str


def id_range_of_prefix(
    prefix: str, field_name: str = "task_id_prefix"
) -> tuple[uuid.UUID, uuid.UUID | None]:
    """The ids that start with `prefix` (hexadecimal digits, dashes ignored), as [low, high):
    a range of the primary key, not a scan."""
    digits = prefix.replace("-", "").lower()
    if (
        len(prefix) > 36
        or not 1 <= len(digits) <= 32
        or any(c not in "0123456789abcdef" for c in digits)
    ):
        raise InvalidArgument(field_name, "must be 1 to 32 hexadecimal digits (dashes ignored)")
    low = int(digits.ljust(32, "0"), 16)
    high = low + 16 ** (32 - len(digits))
    return uuid.UUID(int=low), (uuid.UUID(int=high) if high < 2**128 else None)


def parse_task_id(value: str, field_name: str = "task_id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(field_name, f"{value[:64]!r} is not a UUID") from None


def _parsed_dependencies(depends_on: tuple[str, ...]) -> tuple[uuid.UUID, ...]:
    """Task ids, each once; the store checks that they are the caller's tasks."""
    if len(depends_on) > MAX_DEPENDS_ON:
        raise InvalidArgument("depends_on", f"must name at most {MAX_DEPENDS_ON} tasks")
    parsed: dict[uuid.UUID, None] = {}
    for index, value in enumerate(depends_on):
        task_id = parse_task_id(value, f"depends_on[{index}]")
        if task_id in parsed:
            raise InvalidArgument(f"depends_on[{index}]", f"names {value} twice")
        parsed[task_id] = None
    return tuple(parsed)


def fingerprint(request: ScheduleRequest) -> str:
    """A digest of everything that makes two requests 'the same' for idempotency."""
    policy = request.retry_policy
    canonical = {
        "kind": request.kind,
        "payload": request.payload,
        "run_at": request.run_at.isoformat() if request.run_at else None,
        "retry_policy": [
            policy.max_attempts,
            policy.initial_backoff.total_seconds() if policy.initial_backoff is not None else None,
            policy.max_backoff.total_seconds() if policy.max_backoff is not None else None,
            policy.backoff_multiplier,
            policy.jitter,
        ],
        "timeout": request.timeout.total_seconds() if request.timeout else None,
        "queue": request.queue or DEFAULT_QUEUE,
        "priority": request.priority,
        "concurrency_key": request.concurrency_key,
        **({"depends_on": sorted(request.depends_on)} if request.depends_on else {}),
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


class TaskPreparer:
    """Validates a request to create a task and applies the defaults: what ScheduleTask,
    CreateWorkflow's steps and a handler's context.spawn share."""

    def __init__(
        self,
        kinds: KindRegistry,
        default_retry_policy: RetryPolicy,
        max_payload_bytes: int = 256 * 1024,
    ) -> None:
        self._kinds = kinds
        self._default_retry_policy = default_retry_policy
        self._max_payload_bytes = max_payload_bytes

    def prepare(
        self, caller: Caller, request: ScheduleRequest, now: datetime, queue: QueueSettings
    ) -> NewTask:
        """Validates a request and applies defaults (the queue's, the kind's, the service's);
        raises InvalidArgument naming the field."""
        if not request.kind or len(request.kind) > MAX_KIND_LENGTH:
            raise InvalidArgument("kind", "is required" if not request.kind else "is too long")
        kind = self._kinds.get(request.kind)
        check_payload(request.payload, self._max_payload_bytes)
        kind.parse_payload(request.payload)
        check_text(request.request_id, "request_id")
        if len(request.request_id) > MAX_REQUEST_ID_LENGTH:
            raise InvalidArgument(
                "request_id", f"must be at most {MAX_REQUEST_ID_LENGTH} characters"
            )
        retry.check_timeout(request.timeout, "timeout")
        if request.run_at is not None and request.run_at.tzinfo is None:
            raise InvalidArgument("run_at", "must carry a time zone")
        priority = DEFAULT_PRIORITY if request.priority is None else request.priority
        if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise InvalidArgument("priority", f"must be between {MIN_PRIORITY} and {MAX_PRIORITY}")
        check_text(request.concurrency_key, "concurrency_key")
        if len(request.concurrency_key) > MAX_CONCURRENCY_KEY_LENGTH:
            raise InvalidArgument(
                "concurrency_key", f"must be at most {MAX_CONCURRENCY_KEY_LENGTH} characters"
            )
        policy = retry.validated(self._policy_of(kind.retry_policy, queue, request))
        run_at = max(request.run_at or now, now)
        depends_on = _parsed_dependencies(request.depends_on)
        return NewTask(
            id=uuid.uuid4(),
            tenant=caller.tenant,
            kind=request.kind,
            payload=request.payload,
            status=states.initial_status(run_at_in_future=run_at > now),
            retry_policy=policy,
            timeout=request.timeout or queue.timeout or kind.timeout,
            run_at=run_at,
            request_id=request.request_id,
            request_fingerprint=fingerprint(request) if request.request_id else "",
            queue=request.queue or DEFAULT_QUEUE,
            priority=priority,
            concurrency_key=request.concurrency_key,
            traceparent=current_traceparent(),
            schedule_id=request.schedule_id,
            fire_time=request.fire_time,
            depends_on=depends_on,
            blocked_on=len(depends_on),
        )

    def _policy_of(
        self, kind: RetryPolicyOverride, queue: QueueSettings, request: ScheduleRequest
    ) -> RetryPolicy:
        """Field by field, the first set of: the task's, its queue's, its kind's, the
        service's."""
        policy = self._default_retry_policy
        for override in (kind, queue.retry_policy, request.retry_policy):
            policy = override.applied_to(policy)
        return policy


class TaskManager:
    """Validates requests against the kind registry and the queues, and stores them: the
    dispatcher hands them to the workers as their queues let them through."""

    def __init__(
        self,
        repository: TaskRepository,
        queues: QueueDefaults,
        events: StatusEvents,
        kinds: KindRegistry,
        default_retry_policy: RetryPolicy,
        max_payload_bytes: int = 256 * 1024,
        observer: TaskObserver | None = None,
    ) -> None:
        self._observer = observer or NoObserver()
        self._repository = repository
        self._queues = queues
        self._events = events
        self._preparer = TaskPreparer(kinds, default_retry_policy, max_payload_bytes)

    async def _queue_of(self, caller: Caller, request: ScheduleRequest) -> QueueSettings:
        name = request.queue or DEFAULT_QUEUE
        check_queue_name(name, "queue")
        return await self._queues.settings(caller.tenant, name)

    async def prepare_for(self, caller: Caller, request: ScheduleRequest, now: datetime) -> NewTask:
        """Validates a request against its queue as schedule() does, storing nothing."""
        queue = await self._queue_of(caller, request)
        return self.prepare(caller, request, now, queue)

    def prepare(
        self, caller: Caller, request: ScheduleRequest, now: datetime, queue: QueueSettings
    ) -> NewTask:
        """Validates a request and applies defaults (see TaskPreparer)."""
        return self._preparer.prepare(caller, request, now, queue)

    async def check(self, caller: Caller, request: ScheduleRequest) -> None:
        """Validates a request as schedule() does, storing nothing (a schedule's template)."""
        queue = await self._queue_of(caller, request)
        self.prepare(caller, request, datetime.now(UTC), queue)

    async def schedule(self, caller: Caller, request: ScheduleRequest) -> Task:
        require(caller, WRITE_SCOPE)
        queue = await self._queue_of(caller, request)
        new = self.prepare(caller, request, datetime.now(UTC), queue)
        task, created = await self._repository.insert(new)
        if not created and task.request_fingerprint != new.request_fingerprint:
            raise IdempotencyConflict(
                f"request_id {new.request_id!r} was already used for a different request"
            )
        if created:
            self._observer.scheduled(task)
        return task

    async def schedule_batch(self, caller: Caller, requests: list[ScheduleRequest]) -> list[Task]:
        """All or none: validates every request first, stores them in one transaction."""
        require(caller, WRITE_SCOPE)
        if not 1 <= len(requests) <= MAX_BATCH_SIZE:
            raise InvalidArgument("requests", f"must hold 1 to {MAX_BATCH_SIZE} tasks")
        now = datetime.now(UTC)
        news: list[NewTask] = []
        first_of_key: dict[str, int] = {}  # one idempotency key, one task, even within a batch
        for index, request in enumerate(requests):
            try:
                queue = await self._queue_of(caller, request)
                new = self.prepare(caller, request, now, queue)
            except InvalidArgument as error:
                raise error.within(f"requests[{index}]") from None
            earlier = first_of_key.setdefault(new.request_id, index) if new.request_id else index
            if earlier != index and news[earlier].request_fingerprint != new.request_fingerprint:
                raise IdempotencyConflict(f"requests[{index}] reuses request_id {new.request_id!r}")
            news.append(new if earlier == index else news[earlier])
        distinct = list({new.id: new for new in news}.values())
        results = await self._repository.insert_many(distinct)
        stored = dict(zip((new.id for new in distinct), results, strict=True))
        for task, created in stored.values():
            if created:
                self._observer.scheduled(task)
        return [stored[new.id][0] for new in news]

    async def get(self, caller: Caller, task_id: str) -> Task:
        require(caller, READ_SCOPE)
        return await self._existing(caller, task_id)

    async def _existing(self, caller: Caller, task_id: str) -> Task:
        """The caller's task, for a use case that has checked its scope."""
        task = await self._repository.get(caller.tenant, parse_task_id(task_id))
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def list(self, caller: Caller, request: ListRequest) -> ListResult:
        require(caller, READ_SCOPE)
        page_size = paging.page_size_or_default(request.page_size)
        check_filter(request.task_filter)
        cursor = paging.decode_page_token(request.page_token, request.task_filter)
        page = await self._repository.list(caller.tenant, request.task_filter, page_size, cursor)
        token = ""
        if page.next_cursor is not None:
            token = paging.encode_page_token(page.next_cursor, request.task_filter)
        return ListResult(page.tasks, token)

    async def cancel(self, caller: Caller, task_id: str) -> Task:
        require(caller, WRITE_SCOPE)
        parsed = parse_task_id(task_id)
        cancelled = await self._repository.cancel(caller.tenant, parsed)
        if cancelled is not None:
            if cancelled.status is TaskStatus.CANCELLED:  # a running one ends in its worker
                self._observer.cancelled(cancelled)
            return cancelled
        current = await self._repository.get(caller.tenant, parsed, with_attempts=False)
        if current is None:
            raise TaskNotFound(task_id)
        raise TaskFinished(f"task {task_id} is already {current.status.value}")

    async def count(
        self, caller: Caller, finished_within: timedelta | None = None
    ) -> dict[TaskStatus, int]:
        require(caller, READ_SCOPE)
        window = finished_within or DEFAULT_COUNT_WINDOW
        if not timedelta(0) < window <= MAX_COUNT_WINDOW:
            raise InvalidArgument(
                "finished_within", f"must be above 0 and at most {MAX_COUNT_WINDOW}"
            )
        return await self._repository.count(caller.tenant, window)

    async def retry(self, caller: Caller, task_id: str, request_id: str = "") -> Task:
        """Schedules a copy of a finished task to run now."""
        require(caller, WRITE_SCOPE)
        original = await self._existing(caller, task_id)
        if not original.status.is_terminal:
            raise TaskNotFinished(f"task {task_id} is still {original.status.value}")
        copy = ScheduleRequest(
            kind=original.kind,
            payload=original.payload,
            retry_policy=RetryPolicyOverride.every_field_of(original.retry_policy),
            timeout=original.timeout,
            request_id=request_id,
            queue=original.queue,
            priority=original.priority,
            concurrency_key=original.concurrency_key,
        )
        return await self.schedule(caller, copy)

    async def watch(self, caller: Caller, task_id: str) -> AsyncIterator[TaskChange]:
        """The task's current state, then each committed change (with the task as it stands)
        and each progress report of its running attempt, ending after a terminal change."""
        require(caller, READ_SCOPE)
        parsed = parse_task_id(task_id)
        async with self._events.subscribe(parsed) as events:
            task = await self.get(caller, task_id)
            yield _snapshot_event(task), task
            seen_version = task.version
            # A report committed before the task was read is in it already.
            read_progress = task.progress.update_time if task.progress else None
            if task.status.is_terminal:
                return
            async for event in events:
                if isinstance(event, ProgressEvent):
                    reported = event.progress.update_time
                    if read_progress is None or reported is None or reported > read_progress:
                        yield event
                    continue
                if event is not RESYNC and event.version <= seen_version:
                    continue
                task = await self.get(caller, task_id)
                if event is RESYNC:
                    if task.version <= seen_version:
                        continue
                    event = _snapshot_event(task)
                seen_version = max(seen_version, event.version)
                yield event, task
                if event.status.is_terminal:
                    return


def _snapshot_event(task: Task) -> StatusEvent:
    return StatusEvent(task.id, task.status, task.attempt, task.version, task.update_time)
