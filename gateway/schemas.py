"""REST bodies (snake_case JSON, RFC 3339 times, durations in seconds) and their proto mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from taskscheduler.core.limits import MAX_DURATION, MAX_PAYLOAD_DEPTH
from taskscheduler.core.payloads import depth
from taskscheduler.protojson import struct_to_dict, value_to_json
from taskscheduler.v1 import queue_pb2, schedule_pb2, task_pb2
from taskscheduler.v1 import task_service_pb2 as pb

StatusName = Literal[
    "SCHEDULED", "PENDING", "RUNNING", "RETRYING", "SUCCESS", "FAILED", "CANCELLED"
]
STATUS_PREFIX = "TASK_STATUS_"
QueueStateName = Literal["RUNNING", "PAUSED"]
QUEUE_STATE_PREFIX = "QUEUE_STATE_"
OverlapName = Literal["SKIP", "ALLOW", "BUFFER_ONE"]
OVERLAP_PREFIX = "OVERLAP_POLICY_"

MAX_SECONDS = MAX_DURATION.total_seconds()  # the longest duration a body may give
MAX_LIMIT = 1_000_000
MAX_CATCHUP_SECONDS = 604_800  # a week, the api's bound
QUEUE_NAME_RULE = "1 to 63 lowercase letters, digits, '-' or '_', starting with a letter or digit"

QueueName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description=f"The queue's name: {QUEUE_NAME_RULE}.",
        examples=["emails"],
    ),
]
TaskQueue = Annotated[
    str,
    Field(
        max_length=63,
        pattern=r"^([a-z0-9][a-z0-9_-]*)?$",
        description='The queue of the task; empty or unset: "default". 400 (field `queue`) '
        "when no such queue exists.",
    ),
]
Priority = Annotated[
    int | None,
    Field(
        ge=0,
        le=9,
        description="0 to 9, higher first among the waiting tasks of the queue; unset: 5.",
    ),
]
ConcurrencyKey = Annotated[
    str,
    Field(
        max_length=200,
        description="Groups tasks under the queue's `max_concurrent_per_key` (a customer id, "
        "say); empty: none.",
    ),
]
Limit = Annotated[
    int | None,
    Field(ge=0, le=MAX_LIMIT, description="0 or null: no limit."),
]


class RetryPolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int | None = Field(
        default=None, ge=1, le=100, description="Attempts in all, the first included."
    )
    initial_backoff: float | None = Field(
        default=None, ge=0, le=MAX_SECONDS, description="Seconds before the second attempt."
    )
    max_backoff: float | None = Field(
        default=None, ge=0, le=MAX_SECONDS, description="Upper bound of any backoff, seconds."
    )
    backoff_multiplier: float | None = Field(default=None, ge=1, le=100)
    jitter: bool | None = Field(
        default=None, description="Full jitter: draw the delay from [0, backoff]."
    )


def _shallow(payload: dict[str, Any]) -> dict[str, Any]:
    """Bounds nesting before the payload becomes a protobuf Struct, which has a depth limit."""
    if depth(payload) > MAX_PAYLOAD_DEPTH:
        raise ValueError(f"nests deeper than {MAX_PAYLOAD_DEPTH} levels")
    return payload


Payload = Annotated[dict[str, Any], AfterValidator(_shallow)]


def _in_utc_range(value: datetime) -> datetime:
    """A time a protobuf Timestamp holds: its instant in UTC within years 1 to 9999 (an offset
    can push 0001-01-01 or 9999-12-31 out)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of the range of timestamps (years 1 to 9999 in UTC)") from None


Instant = Annotated[AwareDatetime, AfterValidator(_in_utc_range)]


class ScheduleTaskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=200, examples=["demo.sleep"])
    payload: Payload = Field(default_factory=dict, examples=[{"seconds": 1}])
    run_at: Instant | None = Field(
        default=None, description="RFC 3339 with an offset; unset or past: now."
    )
    retry_policy: RetryPolicyBody | None = None
    timeout: float | None = Field(
        default=None, gt=0, le=MAX_SECONDS, description="Seconds per attempt."
    )
    request_id: str = Field(default="", max_length=200, description="Idempotency key.")
    queue: TaskQueue = ""
    priority: Priority = None
    concurrency_key: ConcurrencyKey = ""


class BatchCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[ScheduleTaskBody] = Field(min_length=1, max_length=1000)


class BatchCreateResponse(BaseModel):
    tasks: list[TaskOut]


class RunTaskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(default="demo.sleep", min_length=1, max_length=200)
    payload: Payload | None = None
    queue: TaskQueue = ""
    priority: Priority = None
    concurrency_key: ConcurrencyKey = ""


class RunTaskResponse(BaseModel):
    message: str
    task_id: str


class TaskSummary(BaseModel):
    task_id: str
    status: StatusName
    attempt: int
    result: Any = None
    error: str = ""


class AttemptOut(BaseModel):
    number: int
    status: StatusName
    worker: str
    start_time: datetime | None
    finish_time: datetime | None
    error_type: str
    error_message: str
    traceback: str


class RetryPolicyOut(BaseModel):
    max_attempts: int
    initial_backoff: float
    max_backoff: float
    backoff_multiplier: float
    jitter: bool


class TaskOut(BaseModel):
    task_id: str
    kind: str
    payload: dict[str, Any]
    status: StatusName
    attempt: int
    max_attempts: int
    run_at: datetime | None
    create_time: datetime | None
    update_time: datetime | None
    start_time: datetime | None
    finish_time: datetime | None
    result: Any = None
    error: str
    retry_policy: RetryPolicyOut
    timeout: float | None
    request_id: str
    attempts: list[AttemptOut]
    queue: str = Field(description="The queue the task belongs to.")
    priority: int = Field(description="0 to 9: higher ones of a queue are dispatched first.")
    concurrency_key: str = Field(description="The task's concurrency key; empty: none.")
    schedule_id: str = Field(
        description="The schedule whose fire made the task; empty for a task scheduled by a call."
    )
    fire_time: datetime | None = Field(
        description="The fire time of the schedule that made the task; null for other tasks."
    )


class TaskList(BaseModel):
    tasks: list[TaskOut]
    next_page_token: str


class StatusEventOut(BaseModel):
    task_id: str
    status: StatusName
    attempt: int
    event_time: datetime | None
    task: TaskOut


# -- queues ----------------------------------------------------------------------------------


class RateLimitBody(BaseModel):
    """A token bucket shared by every dispatcher."""

    model_config = ConfigDict(extra="forbid")

    per_second: float = Field(
        gt=0, le=100_000, description="Dispatches per second, on average.", examples=[10]
    )
    burst: int = Field(
        default=0,
        ge=0,
        le=MAX_LIMIT,
        description="Most dispatches at once after a lull; 0 or unset: one second's worth "
        "(per_second rounded up).",
    )


class QueueBody(BaseModel):
    """A queue to create: its name, flow control and the defaults of its tasks."""

    model_config = ConfigDict(extra="forbid")

    name: QueueName
    rate_limit: RateLimitBody | None = Field(
        default=None, description="Most dispatches per second; null or unset: no limit."
    )
    max_concurrent: Limit = Field(
        default=None,
        description="Most tasks of the queue dispatched or running at once; 0 or null: no limit.",
    )
    max_concurrent_per_key: Limit = Field(
        default=None,
        description="Most tasks of one concurrency_key dispatched or running at once (waiting "
        "keys are served round robin); 0 or null: no limit.",
    )
    retry_policy: RetryPolicyBody | None = Field(
        default=None,
        description="Defaults of the queue's tasks, field by field, before the kind's and the "
        "service's.",
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=MAX_SECONDS,
        description="Default seconds per attempt of the queue's tasks, before the kind's.",
    )


class QueuePatchBody(BaseModel):
    """JSON merge-patch style: only the keys present change; a key set to null clears that
    setting (no limit, no default). An object (rate_limit, retry_policy) is replaced whole."""

    model_config = ConfigDict(extra="forbid")

    rate_limit: RateLimitBody | None = Field(
        default=None, description="The new rate limit; null: no limit."
    )
    max_concurrent: Limit = Field(
        default=None, description="The new concurrency limit; 0 or null: no limit."
    )
    max_concurrent_per_key: Limit = Field(
        default=None, description="The new per-key concurrency limit; 0 or null: no limit."
    )
    retry_policy: RetryPolicyBody | None = Field(
        default=None, description="The new retry defaults (replacing the old ones); null: none."
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=MAX_SECONDS,
        description="The new default seconds per attempt; null: none.",
    )


class RateLimitOut(BaseModel):
    per_second: float = Field(description="Dispatches per second, on average.")
    burst: int = Field(description="Most dispatches at once after a lull.")


class RetryDefaultsOut(BaseModel):
    """Retry defaults as set (on a queue or a schedule's task); null fields are not set."""

    max_attempts: int | None
    initial_backoff: float | None = Field(description="Seconds.")
    max_backoff: float | None = Field(description="Seconds.")
    backoff_multiplier: float | None
    jitter: bool | None


class QueueOut(BaseModel):
    name: str
    state: QueueStateName = Field(description="PAUSED: no task of the queue starts.")
    rate_limit: RateLimitOut | None = Field(description="null: no rate limit.")
    max_concurrent: int = Field(description="0: no limit.")
    max_concurrent_per_key: int = Field(description="0: no limit.")
    retry_policy: RetryDefaultsOut | None = Field(description="Retry defaults of its tasks.")
    timeout: float | None = Field(description="Default seconds per attempt of its tasks.")
    create_time: datetime | None
    update_time: datetime | None
    waiting_count: int = Field(description="Tasks waiting: scheduled, pending or retrying.")
    running_count: int = Field(description="Tasks running.")


class QueueList(BaseModel):
    queues: list[QueueOut] = Field(description="The queues of this page, by name.")
    next_page_token: str = Field(description="Token of the next page; empty on the last page.")


class PurgeOut(BaseModel):
    queue: QueueOut = Field(description="The queue after the purge.")
    cancelled_count: int = Field(description="How many waiting tasks were cancelled.")


# -- schedules -------------------------------------------------------------------------------


class TaskTemplateBody(BaseModel):
    """The task each fire makes, as POST /v1/tasks takes it."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=200, examples=["demo.echo"])
    payload: Payload = Field(default_factory=dict, examples=[{"report": "daily"}])
    queue: TaskQueue = ""
    priority: Priority = None
    concurrency_key: ConcurrencyKey = ""
    retry_policy: RetryPolicyBody | None = None
    timeout: float | None = Field(
        default=None, gt=0, le=MAX_SECONDS, description="Seconds per attempt."
    )


Cron = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="Five fields (minute hour day-of-month month day-of-week), six with seconds "
        "first, or @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly.",
        examples=["*/5 * * * *"],
    ),
]
TimeZone = Annotated[
    str,
    Field(
        max_length=100,
        description='IANA time zone the cron expression is read in; empty or unset: "UTC".',
        examples=["Europe/Paris"],
    ),
]
CatchupWindow = Annotated[
    float | None,
    Field(
        ge=0,
        le=MAX_CATCHUP_SECONDS,
        description="Seconds (at most a week): how far back fires missed while no dispatcher "
        "ran are made up, each once; unset: only the latest missed fire, if within one minute.",
    ),
]
Overlap = Annotated[
    OverlapName | None,
    Field(
        description="What a fire does while an earlier fire's task has not finished: SKIP (no "
        "task; the default), ALLOW (a task regardless), BUFFER_ONE (the latest such fire runs "
        "once the task has finished)."
    ),
]
Description = Annotated[str, Field(max_length=1000, description="A note for people.")]


class ScheduleBody(BaseModel):
    """A cron schedule to create."""

    model_config = ConfigDict(extra="forbid")

    cron: Cron
    time_zone: TimeZone = ""
    task: TaskTemplateBody
    overlap: Overlap = None
    catchup_window: CatchupWindow = None
    description: Description = ""
    paused: bool = Field(default=False, description="Created paused: it fires once resumed.")


class SchedulePatchBody(BaseModel):
    """JSON merge-patch style: only the keys present change; null resets time_zone (UTC),
    overlap (SKIP), catchup_window and description. `task` is replaced whole. Pause and resume
    have routes of their own."""

    model_config = ConfigDict(extra="forbid")

    cron: Cron | SkipJsonSchema[None] = None
    time_zone: TimeZone | None = None
    task: TaskTemplateBody | SkipJsonSchema[None] = None
    overlap: Overlap = None
    catchup_window: CatchupWindow = None
    description: Description | None = None

    @field_validator("cron", "task")
    @classmethod
    def _not_null(cls, value: object) -> object:
        """Given, cron and task cannot be cleared (the validator sees only given values)."""
        if value is None:
            raise ValueError("cannot be null")
        return value


class TaskTemplateOut(BaseModel):
    kind: str
    payload: dict[str, Any]
    queue: str = Field(description='Empty: "default".')
    priority: int | None = Field(description="null: the default, 5.")
    concurrency_key: str
    retry_policy: RetryDefaultsOut | None
    timeout: float | None = Field(description="Seconds per attempt; null: the queue's or kind's.")


class ScheduleOut(BaseModel):
    schedule_id: str
    cron: str
    time_zone: str = Field(description='Empty: "UTC".')
    task: TaskTemplateOut
    overlap: OverlapName
    catchup_window: float | None = Field(description="Seconds.")
    paused: bool = Field(description="A paused schedule makes no task (but :trigger).")
    description: str
    next_fire_times: list[datetime] = Field(description="Up to five; empty while paused.")
    last_fire_time: datetime | None = Field(description="The latest fire that made a task.")
    last_task_id: str = Field(description="The task the latest fire made; empty before.")
    create_time: datetime | None
    update_time: datetime | None


class ScheduleList(BaseModel):
    schedules: list[ScheduleOut] = Field(description="The schedules of this page, oldest first.")
    next_page_token: str = Field(description="Token of the next page; empty on the last page.")


# -- proto -> REST ---------------------------------------------------------------------------


def status_name(value: int) -> StatusName:
    name = task_pb2.TaskStatus.Name(task_pb2.TaskStatus.ValueType(value))
    return cast(StatusName, name.removeprefix(STATUS_PREFIX))


def _time(message: Any, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    return stamp.ToDatetime(tzinfo=UTC)


def _seconds(message: duration_pb2.Duration) -> float:
    return message.ToTimedelta().total_seconds()


def _optional_seconds(message: Any, field: str) -> float | None:
    return _seconds(getattr(message, field)) if message.HasField(field) else None


def task_out(task: task_pb2.Task) -> TaskOut:
    policy = task.retry_policy
    return TaskOut(
        task_id=task.id,
        kind=task.kind,
        payload=struct_to_dict(task.payload),
        status=status_name(task.status),
        attempt=task.attempt,
        max_attempts=task.max_attempts,
        run_at=_time(task, "run_at"),
        create_time=_time(task, "create_time"),
        update_time=_time(task, "update_time"),
        start_time=_time(task, "start_time"),
        finish_time=_time(task, "finish_time"),
        result=value_to_json(task.result) if task.HasField("result") else None,
        error=task.error,
        retry_policy=RetryPolicyOut(
            max_attempts=policy.max_attempts,
            initial_backoff=_seconds(policy.initial_backoff),
            max_backoff=_seconds(policy.max_backoff),
            backoff_multiplier=policy.backoff_multiplier,
            jitter=policy.jitter,
        ),
        timeout=_optional_seconds(task, "timeout"),
        request_id=task.request_id,
        attempts=[
            AttemptOut(
                number=a.number,
                status=status_name(a.status),
                worker=a.worker,
                start_time=_time(a, "start_time"),
                finish_time=_time(a, "finish_time"),
                error_type=a.error_type,
                error_message=a.error_message,
                traceback=a.traceback,
            )
            for a in task.attempts
        ],
        queue=task.queue,
        priority=task.priority,
        concurrency_key=task.concurrency_key,
        schedule_id=task.schedule_id,
        fire_time=_time(task, "fire_time"),
    )


def event_out(event: pb.StreamStatusResponse) -> StatusEventOut:
    return StatusEventOut(
        task_id=event.task_id,
        status=status_name(event.status),
        attempt=event.attempt,
        event_time=_time(event, "event_time"),
        task=task_out(event.task),
    )


def _retry_defaults_out(
    owner: queue_pb2.Queue | schedule_pb2.TaskTemplate,
) -> RetryDefaultsOut | None:
    if not owner.HasField("retry_policy"):
        return None
    policy = owner.retry_policy
    return RetryDefaultsOut(
        max_attempts=policy.max_attempts or None,
        initial_backoff=_optional_seconds(policy, "initial_backoff"),
        max_backoff=_optional_seconds(policy, "max_backoff"),
        backoff_multiplier=policy.backoff_multiplier or None,
        jitter=policy.jitter if policy.HasField("jitter") else None,
    )


def queue_out(queue: queue_pb2.Queue) -> QueueOut:
    state = queue_pb2.QueueState.Name(queue.state).removeprefix(QUEUE_STATE_PREFIX)
    rate = queue.rate_limit
    return QueueOut(
        name=queue.name,
        state=cast(QueueStateName, state),
        rate_limit=RateLimitOut(per_second=rate.per_second, burst=rate.burst)
        if queue.HasField("rate_limit")
        else None,
        max_concurrent=queue.max_concurrent,
        max_concurrent_per_key=queue.max_concurrent_per_key,
        retry_policy=_retry_defaults_out(queue),
        timeout=_optional_seconds(queue, "timeout"),
        create_time=_time(queue, "create_time"),
        update_time=_time(queue, "update_time"),
        waiting_count=queue.waiting_count,
        running_count=queue.running_count,
    )


def _overlap_name(value: int) -> OverlapName:
    if value == schedule_pb2.OVERLAP_POLICY_UNSPECIFIED:
        return "SKIP"  # unset means SKIP
    name = schedule_pb2.OverlapPolicy.Name(schedule_pb2.OverlapPolicy.ValueType(value))
    return cast(OverlapName, name.removeprefix(OVERLAP_PREFIX))


def schedule_out(schedule: schedule_pb2.Schedule) -> ScheduleOut:
    template = schedule.task
    return ScheduleOut(
        schedule_id=schedule.id,
        cron=schedule.cron,
        time_zone=schedule.time_zone,
        task=TaskTemplateOut(
            kind=template.kind,
            payload=struct_to_dict(template.payload),
            queue=template.queue,
            priority=template.priority if template.HasField("priority") else None,
            concurrency_key=template.concurrency_key,
            retry_policy=_retry_defaults_out(template),
            timeout=_optional_seconds(template, "timeout"),
        ),
        overlap=_overlap_name(schedule.overlap),
        catchup_window=_optional_seconds(schedule, "catchup_window"),
        paused=schedule.paused,
        description=schedule.description,
        next_fire_times=[stamp.ToDatetime(tzinfo=UTC) for stamp in schedule.next_fire_times],
        last_fire_time=_time(schedule, "last_fire_time"),
        last_task_id=schedule.last_task_id,
        create_time=_time(schedule, "create_time"),
        update_time=_time(schedule, "update_time"),
    )


# -- REST -> proto ---------------------------------------------------------------------------


def _duration(seconds: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(round(seconds * 1e9))
    return message


def _retry_policy_into(message: task_pb2.RetryPolicy, policy: RetryPolicyBody) -> None:
    message.SetInParent()
    if policy.max_attempts is not None:
        message.max_attempts = policy.max_attempts
    if policy.initial_backoff is not None:
        message.initial_backoff.CopyFrom(_duration(policy.initial_backoff))
    if policy.max_backoff is not None:
        message.max_backoff.CopyFrom(_duration(policy.max_backoff))
    if policy.backoff_multiplier is not None:
        message.backoff_multiplier = policy.backoff_multiplier
    if policy.jitter is not None:
        message.jitter = policy.jitter


def _task_fields_into(
    message: pb.ScheduleTaskRequest | schedule_pb2.TaskTemplate,
    body: ScheduleTaskBody | TaskTemplateBody,
) -> None:
    """The fields a task request and a schedule's task template share."""
    message.kind = body.kind
    message.payload.update(body.payload)
    message.queue = body.queue
    if body.priority is not None:
        message.priority = body.priority
    message.concurrency_key = body.concurrency_key
    if body.timeout is not None:
        message.timeout.CopyFrom(_duration(body.timeout))
    if body.retry_policy is not None:
        _retry_policy_into(message.retry_policy, body.retry_policy)


def schedule_request(body: ScheduleTaskBody, request_id: str = "") -> pb.ScheduleTaskRequest:
    request = pb.ScheduleTaskRequest(request_id=request_id or body.request_id)
    _task_fields_into(request, body)
    if body.run_at is not None:
        request.run_at.FromDatetime(body.run_at)
    return request


def run_task_request(body: RunTaskBody) -> pb.ScheduleTaskRequest:
    request = pb.ScheduleTaskRequest(
        kind=body.kind, queue=body.queue, concurrency_key=body.concurrency_key
    )
    request.payload.update(body.payload or {})
    if body.priority is not None:
        request.priority = body.priority
    return request


def _queue_settings_into(message: queue_pb2.Queue, body: QueueBody | QueuePatchBody) -> None:
    """The settings given; a null leaves the field unset (no limit, no default)."""
    if body.rate_limit is not None:
        message.rate_limit.per_second = body.rate_limit.per_second
        message.rate_limit.burst = body.rate_limit.burst
    message.max_concurrent = body.max_concurrent or 0
    message.max_concurrent_per_key = body.max_concurrent_per_key or 0
    if body.retry_policy is not None:
        _retry_policy_into(message.retry_policy, body.retry_policy)
    if body.timeout is not None:
        message.timeout.CopyFrom(_duration(body.timeout))


def create_queue_request(body: QueueBody) -> pb.CreateQueueRequest:
    request = pb.CreateQueueRequest(queue=queue_pb2.Queue(name=body.name))
    _queue_settings_into(request.queue, body)
    return request


def update_queue_request(name: str, body: QueuePatchBody) -> pb.UpdateQueueRequest:
    """The keys present in the body are the update mask (never empty: the caller checks)."""
    request = pb.UpdateQueueRequest(
        queue=queue_pb2.Queue(name=name),
        update_mask=field_mask_pb2.FieldMask(paths=sorted(body.model_fields_set)),
    )
    _queue_settings_into(request.queue, body)
    return request


def _schedule_fields_into(
    message: schedule_pb2.Schedule, body: ScheduleBody | SchedulePatchBody
) -> None:
    if body.cron is not None:
        message.cron = body.cron
    message.time_zone = body.time_zone or ""
    if body.task is not None:
        _task_fields_into(message.task, body.task)
    if body.overlap is not None:
        message.overlap = schedule_pb2.OverlapPolicy.Value(OVERLAP_PREFIX + body.overlap)
    if body.catchup_window is not None:
        message.catchup_window.CopyFrom(_duration(body.catchup_window))
    message.description = body.description or ""


def create_schedule_request(body: ScheduleBody) -> pb.CreateScheduleRequest:
    request = pb.CreateScheduleRequest(schedule=schedule_pb2.Schedule(paused=body.paused))
    _schedule_fields_into(request.schedule, body)
    return request


def update_schedule_request(schedule_id: str, body: SchedulePatchBody) -> pb.UpdateScheduleRequest:
    """The keys present in the body are the update mask (never empty: the caller checks)."""
    request = pb.UpdateScheduleRequest(
        schedule=schedule_pb2.Schedule(id=schedule_id),
        update_mask=field_mask_pb2.FieldMask(paths=sorted(body.model_fields_set)),
    )
    _schedule_fields_into(request.schedule, body)
    return request
