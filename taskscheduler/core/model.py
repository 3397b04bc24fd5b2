"""Domain types of a task and its attempts, free of any transport or driver."""

from __future__ import annotations

import enum
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

JSON = Any  # a value that json.dumps accepts
_T = TypeVar("_T")


class TaskStatus(enum.StrEnum):
    """Where a task stands; the values are the names used in SQL and REST."""

    BLOCKED = "BLOCKED"
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how late a failed task is tried again."""

    max_attempts: int = 3
    initial_backoff: timedelta = timedelta(seconds=1)
    max_backoff: timedelta = timedelta(minutes=5)
    backoff_multiplier: float = 2.0
    jitter: bool = True


@dataclass(frozen=True)
class RetryPolicyOverride:
    """The fields a caller set on a retry policy; None means 'take the default'."""

    max_attempts: int | None = None
    initial_backoff: timedelta | None = None
    max_backoff: timedelta | None = None
    backoff_multiplier: float | None = None
    jitter: bool | None = None

    @classmethod
    def every_field_of(cls, policy: RetryPolicy) -> RetryPolicyOverride:
        """An override that leaves nothing to defaults: `policy` as it is."""
        return cls(**asdict(policy))

    def applied_to(self, base: RetryPolicy) -> RetryPolicy:
        initial_backoff = _first(self.initial_backoff, base.initial_backoff)
        # An unset cap never undercuts the caller's own initial backoff.
        default_cap = max(base.max_backoff, initial_backoff)
        return RetryPolicy(
            max_attempts=_first(self.max_attempts, base.max_attempts),
            initial_backoff=initial_backoff,
            max_backoff=_first(self.max_backoff, default_cap),
            backoff_multiplier=_first(self.backoff_multiplier, base.backoff_multiplier),
            jitter=_first(self.jitter, base.jitter),
        )


def _first(value: _T | None, default: _T) -> _T:
    return default if value is None else value


DEFAULT_QUEUE = "default"
DEFAULT_PRIORITY = 5


class QueueState(enum.StrEnum):
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"


class HeldBackBy(enum.StrEnum):
    """The limit that kept a queue's ready tasks back in a dispatch pass (a metric label)."""

    RATE = "rate"
    CONCURRENCY = "concurrency"  # max_concurrent or per key: freed as tasks end
    DISPATCH_AHEAD = "dispatch_ahead"  # the broker's backlog bound: freed as workers claim


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `per_second` dispatches on average, `burst` at once after a lull."""

    per_second: float
    burst: int


@dataclass(frozen=True)
class QueueSettings:
    """What a caller sets on a queue; None and 0 mean no limit."""

    rate_limit: RateLimit | None = None
    max_concurrent: int = 0
    max_concurrent_per_key: int = 0
    retry_policy: RetryPolicyOverride = field(default_factory=RetryPolicyOverride)
    timeout: timedelta | None = None


@dataclass(frozen=True)
class Queue:
    """A named line of tasks of one tenant, with its flow control and its tasks' defaults."""

    tenant: str
    name: str
    state: QueueState
    settings: QueueSettings
    create_time: datetime
    update_time: datetime
    waiting: int = 0
    running: int = 0


class Overlap(enum.StrEnum):
    """What a schedule's fire does while an earlier fire's task has not finished."""

    SKIP = "SKIP"
    ALLOW = "ALLOW"
    BUFFER_ONE = "BUFFER_ONE"


@dataclass(frozen=True)
class TaskTemplate:
    """The task a schedule makes at each fire, as ScheduleTask takes it."""

    kind: str
    payload: dict[str, JSON] = field(default_factory=dict)
    queue: str = DEFAULT_QUEUE
    priority: int | None = None
    concurrency_key: str = ""
    retry_policy: RetryPolicyOverride = field(default_factory=RetryPolicyOverride)
    timeout: timedelta | None = None


DEFAULT_CATCHUP_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class ScheduleSpec:
    """What a caller sets on a schedule."""

    cron: str
    task: TaskTemplate
    time_zone: str = "UTC"
    overlap: Overlap = Overlap.SKIP
    catchup_window: timedelta = DEFAULT_CATCHUP_WINDOW
    description: str = ""


@dataclass(frozen=True)
class Schedule:
    """A cron schedule of one tenant and where it stands."""

    id: uuid.UUID
    tenant: str
    spec: ScheduleSpec
    paused: bool
    next_fire_time: datetime | None
    create_time: datetime
    update_time: datetime
    last_fire_time: datetime | None = None
    last_task_id: uuid.UUID | None = None
    buffered_fire_time: datetime | None = None


READ_SCOPE = "tasks:read"
WRITE_SCOPE = "tasks:write"


@dataclass(frozen=True)
class Caller:
    """Who is calling, from a verified token: the tenant its data belongs to, and its scopes."""

    tenant: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class Attempt:
    """One execution of a task by a worker."""

    number: int
    status: TaskStatus
    worker: str
    start_time: datetime
    finish_time: datetime | None = None
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""


@dataclass(frozen=True)
class Progress:
    """What a running handler reported of its work (context.report_progress)."""

    done: float
    total: float | None = None
    message: str = ""
    update_time: datetime | None = None  # set by the store


@dataclass(frozen=True)
class Task:
    """A task as stored, with its attempts when they were asked for."""

    id: uuid.UUID
    tenant: str
    kind: str
    payload: dict[str, JSON]
    status: TaskStatus
    attempt: int
    retry_policy: RetryPolicy
    timeout: timedelta | None
    run_at: datetime
    create_time: datetime
    update_time: datetime
    start_time: datetime | None = None
    finish_time: datetime | None = None
    result: JSON = None
    error: str = ""
    request_id: str = ""
    request_fingerprint: str = ""
    queue: str = DEFAULT_QUEUE
    priority: int = DEFAULT_PRIORITY
    concurrency_key: str = ""
    schedule_id: uuid.UUID | None = None
    fire_time: datetime | None = None
    cancel_requested: bool = False
    version: int = 1
    workflow_id: uuid.UUID | None = None
    step_name: str = ""
    depends_on: tuple[uuid.UUID, ...] = ()
    """Read with the attempts (empty otherwise)."""
    attempts: tuple[Attempt, ...] = field(default=())
    progress: Progress | None = None

    @property
    def max_attempts(self) -> int:
        return self.retry_policy.max_attempts


@dataclass(frozen=True)
class NewTask:
    """A validated request to create a task, defaults applied, ready to store."""

    id: uuid.UUID
    tenant: str
    kind: str
    payload: dict[str, JSON]
    status: TaskStatus
    retry_policy: RetryPolicy
    timeout: timedelta | None
    run_at: datetime
    request_id: str = ""
    request_fingerprint: str = ""
    queue: str = DEFAULT_QUEUE
    priority: int = DEFAULT_PRIORITY
    concurrency_key: str = ""
    traceparent: str = ""
    schedule_id: uuid.UUID | None = None
    fire_time: datetime | None = None
    workflow_id: uuid.UUID | None = None
    step_name: str = ""
    depends_on: tuple[uuid.UUID, ...] = ()
    """Tasks that must succeed first."""
    blocked_on: int = 0
    """How many of them have not yet succeeded (the task is BLOCKED while above 0)."""
    has_dependents: bool = False
    """Whether tasks stored with it depend on it (a workflow's step)."""


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks a listing returns."""

    statuses: frozenset[TaskStatus] = frozenset()
    kind: str = ""
    queue: str = ""
    schedule_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    id_range: tuple[uuid.UUID, uuid.UUID | None] | None = None
    """[low, high) of ids (high None: open): a search by the start of an id."""
    # Half-open windows, [after, before): None leaves a side open. A finish window matches
    # finished tasks only.
    created_after: datetime | None = None
    created_before: datetime | None = None
    finished_after: datetime | None = None
    finished_before: datetime | None = None
    error_type: str = ""
    """Only tasks whose last attempt ended with this error type."""
    payload_contains: dict[str, JSON] | None = None
    """Only tasks whose payload contains this object (jsonb @>)."""


@dataclass(frozen=True)
class PageCursor:
    """Keyset position after the last task of a page (newest first order)."""

    create_time: datetime
    task_id: uuid.UUID


@dataclass(frozen=True)
class ResourcePosition:
    """Keyset position after the last resource of a page, in creation order."""

    create_time: datetime
    resource_id: uuid.UUID


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    next_cursor: PageCursor | None


@dataclass(frozen=True)
class StatusEvent:
    """One committed status change of a task, as announced by the store.

    `version` grows by one with every status change of the task, so a subscriber can
    drop events it has already seen in a snapshot.
    """

    task_id: uuid.UUID
    status: TaskStatus
    attempt: int
    version: int
    event_time: datetime
    workflow_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ProgressEvent:
    """A running attempt's progress report, as announced by the store once committed."""

    task_id: uuid.UUID
    attempt: int
    progress: Progress


class WorkflowStatus(enum.StrEnum):
    """Derived from the steps: RUNNING while one has not finished; then FAILED when one failed,
    else CANCELLED when one was cancelled, else SUCCESS."""

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self is not WorkflowStatus.RUNNING


class FailurePolicy(enum.StrEnum):
    """What a step's failure (or cancel) does to the rest of its workflow."""

    CANCEL_WORKFLOW = "CANCEL_WORKFLOW"  # every unfinished step is cancelled
    CONTINUE = "CONTINUE"  # only the steps that depend on it, directly or not


@dataclass(frozen=True)
class WorkflowStep:
    """A step of a workflow as stored: its task and where it stands."""

    name: str
    task_id: uuid.UUID
    status: TaskStatus
    kind: str
    depends_on: tuple[str, ...] = ()
    start_time: datetime | None = None
    finish_time: datetime | None = None
    version: int = 0
    """The task's version: grows with each of its status changes."""


@dataclass(frozen=True)
class Workflow:
    """A set of steps, each a task that waits (BLOCKED) for the steps it depends on."""

    id: uuid.UUID
    tenant: str
    name: str
    status: WorkflowStatus
    on_failure: FailurePolicy
    create_time: datetime
    update_time: datetime
    finish_time: datetime | None = None
    request_id: str = ""
    request_fingerprint: str = ""
    step_count: int = 0
    steps: tuple[WorkflowStep, ...] = ()
    """Read with the workflow (empty in a listing)."""


@dataclass(frozen=True)
class NewWorkflow:
    """A validated workflow, its steps ready to store (the roots PENDING or SCHEDULED, the
    others BLOCKED on the steps they depend on)."""

    id: uuid.UUID
    tenant: str
    name: str
    on_failure: FailurePolicy
    steps: tuple[NewTask, ...]
    request_id: str = ""
    request_fingerprint: str = ""


LOST_AFTER_HEARTBEATS = 3
"""A worker whose last heartbeat is older than this many of its intervals is LOST."""


class WorkerState(enum.StrEnum):
    ONLINE = "ONLINE"
    LOST = "LOST"  # no heartbeat for LOST_AFTER_HEARTBEATS intervals: killed, hung or cut off
    STOPPED = "STOPPED"  # shut down cleanly; forgotten after a while


@dataclass(frozen=True)
class WorkerRegistration:
    """What a worker process says of itself. `name` is `host:pid`, as its attempts record it;
    a pool process names its worker's main process as `parent`."""

    name: str
    host: str
    pid: int
    celery_hostname: str
    queues: tuple[str, ...]  # empty: every queue
    concurrency: int
    version: str
    heartbeat_seconds: float
    parent: str = ""


@dataclass(frozen=True)
class Worker:
    """A registered worker process as the fleet's listing shows it."""

    registration: WorkerRegistration
    state: WorkerState
    start_time: datetime
    heartbeat_time: datetime
    stop_time: datetime | None
    running_task_ids: tuple[uuid.UUID, ...] = ()

    def serves(self, queue: str) -> bool:
        queues = self.registration.queues
        return not queues or queue in queues
