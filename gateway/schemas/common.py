"""What the REST bodies of several resources share: statuses, times and durations, payloads,
the fields of a task (a task's and a schedule's template) and retry policies, with their proto
mappings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol, cast

from google.protobuf import duration_pb2, timestamp_pb2
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from taskscheduler.core.limits import (
    MAX_ATTEMPTS,
    MAX_BACKOFF_MULTIPLIER,
    MAX_CONCURRENCY_KEY_LENGTH,
    MAX_DURATION,
    MAX_PAYLOAD_DEPTH,
    MAX_PRIORITY,
    MAX_QUEUE_NAME_LENGTH,
    MIN_ATTEMPTS,
    MIN_BACKOFF_MULTIPLIER,
    MIN_PRIORITY,
    QUEUE_NAME_PATTERN,
)
from taskscheduler.core.model import DEFAULT_PRIORITY
from taskscheduler.core.payloads import depth
from taskscheduler.v1 import queue_pb2, schedule_pb2, task_pb2
from taskscheduler.v1 import task_service_pb2 as pb

StatusName = Literal[
    "BLOCKED", "SCHEDULED", "PENDING", "RUNNING", "RETRYING", "SUCCESS", "FAILED", "CANCELLED"
]
STATUS_PREFIX = "TASK_STATUS_"

MAX_SECONDS = MAX_DURATION.total_seconds()  # the longest duration a body may give

TaskQueue = Annotated[
    str,
    Field(
        max_length=MAX_QUEUE_NAME_LENGTH,
        pattern=f"^({QUEUE_NAME_PATTERN})?$",
        description='The queue of the task; empty or unset: "default". 400 (field `queue`) '
        "when no such queue exists.",
    ),
]
Priority = Annotated[
    int | None,
    Field(
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description=f"{MIN_PRIORITY} to {MAX_PRIORITY}, higher first among the waiting tasks "
        f"of the queue; unset: {DEFAULT_PRIORITY}.",
    ),
]
ConcurrencyKey = Annotated[
    str,
    Field(
        max_length=MAX_CONCURRENCY_KEY_LENGTH,
        description="Groups tasks under the queue's `max_concurrent_per_key` (a customer id, "
        "say); empty: none.",
    ),
]
Timeout = Annotated[float | None, Field(gt=0, le=MAX_SECONDS, description="Seconds per attempt.")]


class RetryPolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int | None = Field(
        default=None,
        ge=MIN_ATTEMPTS,
        le=MAX_ATTEMPTS,
        description="Attempts in all, the first included.",
    )
    initial_backoff: float | None = Field(
        default=None, ge=0, le=MAX_SECONDS, description="Seconds before the second attempt."
    )
    max_backoff: float | None = Field(
        default=None, ge=0, le=MAX_SECONDS, description="Upper bound of any backoff, seconds."
    )
    backoff_multiplier: float | None = Field(
        default=None, ge=MIN_BACKOFF_MULTIPLIER, le=MAX_BACKOFF_MULTIPLIER
    )
    jitter: bool | None = Field(
        default=None, description="Full jitter: draw the delay from [0, backoff]."
    )


class RetryDefaultsOut(BaseModel):
    """Retry defaults as set (on a queue or a schedule's task); null fields are not set."""

    max_attempts: int | None
    initial_backoff: float | None = Field(description="Seconds.")
    max_backoff: float | None = Field(description="Seconds.")
    backoff_multiplier: float | None
    jitter: bool | None


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


class TaskFields(Protocol):
    """The fields a task body and a schedule's task template share."""

    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def queue(self) -> str: ...
    @property
    def priority(self) -> int | None: ...
    @property
    def concurrency_key(self) -> str: ...
    @property
    def retry_policy(self) -> RetryPolicyBody | None: ...
    @property
    def timeout(self) -> float | None: ...


# -- proto -> REST ---------------------------------------------------------------------------


def status_name(value: int) -> StatusName:
    name = task_pb2.TaskStatus.Name(task_pb2.TaskStatus.ValueType(value))
    return cast(StatusName, name.removeprefix(STATUS_PREFIX))


def time_of(message: Any, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    return stamp.ToDatetime(tzinfo=UTC)


def seconds_of(message: duration_pb2.Duration) -> float:
    return message.ToTimedelta().total_seconds()


def optional_seconds(message: Any, field: str) -> float | None:
    return seconds_of(getattr(message, field)) if message.HasField(field) else None


def retry_defaults_out(
    owner: queue_pb2.Queue | schedule_pb2.TaskTemplate,
) -> RetryDefaultsOut | None:
    if not owner.HasField("retry_policy"):
        return None
    policy = owner.retry_policy
    return RetryDefaultsOut(
        max_attempts=policy.max_attempts or None,
        initial_backoff=optional_seconds(policy, "initial_backoff"),
        max_backoff=optional_seconds(policy, "max_backoff"),
        backoff_multiplier=policy.backoff_multiplier or None,
        jitter=policy.jitter if policy.HasField("jitter") else None,
    )


# -- REST -> proto ---------------------------------------------------------------------------


def duration(seconds: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(round(seconds * 1e9))
    return message


def retry_policy_into(message: task_pb2.RetryPolicy, policy: RetryPolicyBody) -> None:
    message.SetInParent()
    if policy.max_attempts is not None:
        message.max_attempts = policy.max_attempts
    if policy.initial_backoff is not None:
        message.initial_backoff.CopyFrom(duration(policy.initial_backoff))
    if policy.max_backoff is not None:
        message.max_backoff.CopyFrom(duration(policy.max_backoff))
    if policy.backoff_multiplier is not None:
        message.backoff_multiplier = policy.backoff_multiplier
    if policy.jitter is not None:
        message.jitter = policy.jitter


def task_fields_into(
    message: pb.ScheduleTaskRequest | schedule_pb2.TaskTemplate, body: TaskFields
) -> None:
    """The fields a task request and a schedule's task template share."""
    message.kind = body.kind
    message.payload.update(body.payload)
    message.queue = body.queue
    if body.priority is not None:
        message.priority = body.priority
    message.concurrency_key = body.concurrency_key
    if body.timeout is not None:
        message.timeout.CopyFrom(duration(body.timeout))
    if body.retry_policy is not None:
        retry_policy_into(message.retry_policy, body.retry_policy)
