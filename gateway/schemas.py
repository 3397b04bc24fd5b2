"""REST bodies (snake_case JSON, RFC 3339 times, durations in seconds) and their proto mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

from google.protobuf import duration_pb2, timestamp_pb2
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from taskscheduler.core.payloads import MAX_DEPTH, depth
from taskscheduler.protojson import struct_to_dict, value_to_json
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb

StatusName = Literal[
    "SCHEDULED", "PENDING", "RUNNING", "RETRYING", "SUCCESS", "FAILED", "CANCELLED"
]
STATUS_PREFIX = "TASK_STATUS_"


class RetryPolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int | None = Field(
        default=None, ge=1, le=100, description="Attempts in all, the first included."
    )
    initial_backoff: float | None = Field(
        default=None, ge=0, le=31_536_000, description="Seconds before the second attempt."
    )
    max_backoff: float | None = Field(
        default=None, ge=0, le=31_536_000, description="Upper bound of any backoff, seconds."
    )
    backoff_multiplier: float | None = Field(default=None, ge=1, le=100)
    jitter: bool | None = Field(
        default=None, description="Full jitter: draw the delay from [0, backoff]."
    )


def _shallow(payload: dict[str, Any]) -> dict[str, Any]:
    """Bounds nesting before the payload becomes a protobuf Struct, which has a depth limit."""
    if depth(payload) > MAX_DEPTH:
        raise ValueError(f"nests deeper than {MAX_DEPTH} levels")
    return payload


Payload = Annotated[dict[str, Any], AfterValidator(_shallow)]


class ScheduleTaskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=200, examples=["demo.sleep"])
    payload: Payload = Field(default_factory=dict, examples=[{"seconds": 1}])
    run_at: AwareDatetime | None = Field(
        default=None, description="RFC 3339 with an offset; unset or past: now."
    )
    retry_policy: RetryPolicyBody | None = None
    timeout: float | None = Field(
        default=None, gt=0, le=31_536_000, description="Seconds per attempt."
    )
    request_id: str = Field(default="", max_length=200, description="Idempotency key.")


class BatchCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[ScheduleTaskBody] = Field(min_length=1, max_length=1000)


class BatchCreateResponse(BaseModel):
    tasks: list[TaskOut]


class RunTaskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(default="demo.sleep", min_length=1, max_length=200)
    payload: Payload | None = None


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


class TaskList(BaseModel):
    tasks: list[TaskOut]
    next_page_token: str


class StatusEventOut(BaseModel):
    task_id: str
    status: StatusName
    attempt: int
    event_time: datetime | None
    task: TaskOut


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
        timeout=_seconds(task.timeout) if task.HasField("timeout") else None,
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
    )


def event_out(event: pb.StreamStatusResponse) -> StatusEventOut:
    return StatusEventOut(
        task_id=event.task_id,
        status=status_name(event.status),
        attempt=event.attempt,
        event_time=_time(event, "event_time"),
        task=task_out(event.task),
    )


# -- REST -> proto ---------------------------------------------------------------------------


def _duration(seconds: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(round(seconds * 1e9))
    return message


def schedule_request(body: ScheduleTaskBody, request_id: str = "") -> pb.ScheduleTaskRequest:
    request = pb.ScheduleTaskRequest(kind=body.kind, request_id=request_id or body.request_id)
    request.payload.update(body.payload)
    if body.run_at is not None:
        request.run_at.FromDatetime(body.run_at)
    if body.timeout is not None:
        request.timeout.CopyFrom(_duration(body.timeout))
    if body.retry_policy is not None:
        policy = body.retry_policy
        message = request.retry_policy
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
    return request
