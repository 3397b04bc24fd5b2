"""The REST bodies of queues and their proto mappings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, cast

from google.protobuf import field_mask_pb2
from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import (
    MAX_SECONDS,
    RetryDefaultsOut,
    RetryPolicyBody,
    duration,
    optional_seconds,
    retry_defaults_out,
    retry_policy_into,
    time_of,
)
from taskscheduler.core.limits import (
    MAX_CONCURRENCY,
    MAX_QUEUE_NAME_LENGTH,
    MAX_RATE_PER_SECOND,
    QUEUE_NAME_PATTERN,
    QUEUE_NAME_RULE,
)
from taskscheduler.v1 import queue_pb2
from taskscheduler.v1 import task_service_pb2 as pb

QueueStateName = Literal["RUNNING", "PAUSED"]
QUEUE_STATE_PREFIX = "QUEUE_STATE_"

QueueName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_QUEUE_NAME_LENGTH,
        pattern=f"^{QUEUE_NAME_PATTERN}$",
        description=f"The queue's name: {QUEUE_NAME_RULE}.",
        examples=["emails"],
    ),
]
Limit = Annotated[
    int | None,
    Field(ge=0, le=MAX_CONCURRENCY, description="0 or null: no limit."),
]


class RateLimitBody(BaseModel):
    """A token bucket shared by every dispatcher."""

    model_config = ConfigDict(extra="forbid")

    per_second: float = Field(
        gt=0,
        le=MAX_RATE_PER_SECOND,
        description="Dispatches per second, on average.",
        examples=[10],
    )
    burst: int = Field(
        default=0,
        ge=0,
        le=MAX_CONCURRENCY,
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


# -- proto -> REST ---------------------------------------------------------------------------


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
        retry_policy=retry_defaults_out(queue),
        timeout=optional_seconds(queue, "timeout"),
        create_time=time_of(queue, "create_time"),
        update_time=time_of(queue, "update_time"),
        waiting_count=queue.waiting_count,
        running_count=queue.running_count,
    )


# -- REST -> proto ---------------------------------------------------------------------------


def _queue_settings_into(message: queue_pb2.Queue, body: QueueBody | QueuePatchBody) -> None:
    """The settings given; a null leaves the field unset (no limit, no default)."""
    if body.rate_limit is not None:
        message.rate_limit.per_second = body.rate_limit.per_second
        message.rate_limit.burst = body.rate_limit.burst
    message.max_concurrent = body.max_concurrent or 0
    message.max_concurrent_per_key = body.max_concurrent_per_key or 0
    if body.retry_policy is not None:
        retry_policy_into(message.retry_policy, body.retry_policy)
    if body.timeout is not None:
        message.timeout.CopyFrom(duration(body.timeout))


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
