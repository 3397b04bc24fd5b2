"""The REST bodies of tasks (the seed's two endpoints' too) and their proto mappings."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import (
    ConcurrencyKey,
    Instant,
    Payload,
    Priority,
    RetryPolicyBody,
    StatusName,
    TaskQueue,
    Timeout,
    optional_seconds,
    seconds_of,
    status_name,
    task_fields_into,
    time_of,
)
from taskscheduler.core.limits import (
    MAX_BATCH_SIZE,
    MAX_DEPENDS_ON,
    MAX_KIND_LENGTH,
    MAX_PRIORITY,
    MAX_REQUEST_ID_LENGTH,
    MIN_PRIORITY,
)
from taskscheduler.protojson import struct_to_dict, value_to_json
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb


class ScheduleTaskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=MAX_KIND_LENGTH, examples=["demo.sleep"])
    payload: Payload = Field(default_factory=dict, examples=[{"seconds": 1}])
    run_at: Instant | None = Field(
        default=None, description="RFC 3339 with an offset; unset or past: now."
    )
    retry_policy: RetryPolicyBody | None = None
    timeout: Timeout = None
    request_id: str = Field(
        default="", max_length=MAX_REQUEST_ID_LENGTH, description="Idempotency key."
    )
    queue: TaskQueue = ""
    priority: Priority = None
    concurrency_key: ConcurrencyKey = ""
    depends_on: list[str] = Field(
        default_factory=list,
        max_length=MAX_DEPENDS_ON,
        description="Ids of your tasks that must succeed first: the task is BLOCKED until they "
        "have, and CANCELLED when one fails or is cancelled.",
    )


class BatchCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[ScheduleTaskBody] = Field(min_length=1, max_length=MAX_BATCH_SIZE)


class BatchCreateResponse(BaseModel):
    tasks: list[TaskOut]


class RunTaskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(default="demo.sleep", min_length=1, max_length=MAX_KIND_LENGTH)
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


class ProgressOut(BaseModel):
    """What a running handler reported of its work (context.report_progress)."""

    done: float
    total: float | None = Field(description="Units in all; null when the handler did not say.")
    message: str
    update_time: datetime | None


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
    priority: int = Field(
        description=f"{MIN_PRIORITY} to {MAX_PRIORITY}: higher ones of a queue are dispatched "
        "first."
    )
    concurrency_key: str = Field(description="The task's concurrency key; empty: none.")
    schedule_id: str = Field(
        description="The schedule whose fire made the task; empty for a task scheduled by a call."
    )
    fire_time: datetime | None = Field(
        description="The fire time of the schedule that made the task; null for other tasks."
    )
    workflow_id: str = Field(description="The workflow the task is a step of; empty: none.")
    step_name: str = Field(description="The step's name in its workflow.")
    depends_on: list[str] = Field(
        description="Ids of the tasks that must succeed before this one (GET of one task)."
    )
    progress: ProgressOut | None = Field(
        default=None, description="What the handler last reported; null until it reports."
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


class ProgressEventOut(BaseModel):
    """A `progress` event: the running attempt's report (the status is unchanged)."""

    task_id: str
    attempt: int
    event_time: datetime | None
    progress: ProgressOut


# -- proto -> REST ---------------------------------------------------------------------------


def task_out(task: task_pb2.Task) -> TaskOut:
    policy = task.retry_policy
    return TaskOut(
        task_id=task.id,
        kind=task.kind,
        payload=struct_to_dict(task.payload),
        status=status_name(task.status),
        attempt=task.attempt,
        max_attempts=task.max_attempts,
        run_at=time_of(task, "run_at"),
        create_time=time_of(task, "create_time"),
        update_time=time_of(task, "update_time"),
        start_time=time_of(task, "start_time"),
        finish_time=time_of(task, "finish_time"),
        result=value_to_json(task.result) if task.HasField("result") else None,
        error=task.error,
        retry_policy=RetryPolicyOut(
            max_attempts=policy.max_attempts,
            initial_backoff=seconds_of(policy.initial_backoff),
            max_backoff=seconds_of(policy.max_backoff),
            backoff_multiplier=policy.backoff_multiplier,
            jitter=policy.jitter,
        ),
        timeout=optional_seconds(task, "timeout"),
        request_id=task.request_id,
        attempts=[
            AttemptOut(
                number=a.number,
                status=status_name(a.status),
                worker=a.worker,
                start_time=time_of(a, "start_time"),
                finish_time=time_of(a, "finish_time"),
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
        fire_time=time_of(task, "fire_time"),
        workflow_id=task.workflow_id,
        step_name=task.step_name,
        depends_on=list(task.depends_on),
        progress=progress_out(task.progress) if task.HasField("progress") else None,
    )


def progress_out(progress: task_pb2.Progress) -> ProgressOut:
    return ProgressOut(
        done=progress.done,
        total=progress.total if progress.HasField("total") else None,
        message=progress.message,
        update_time=time_of(progress, "update_time"),
    )


def progress_event_out(event: pb.StreamStatusResponse) -> ProgressEventOut:
    return ProgressEventOut(
        task_id=event.task_id,
        attempt=event.attempt,
        event_time=time_of(event, "event_time"),
        progress=progress_out(event.progress),
    )


def event_out(event: pb.StreamStatusResponse) -> StatusEventOut:
    return StatusEventOut(
        task_id=event.task_id,
        status=status_name(event.status),
        attempt=event.attempt,
        event_time=time_of(event, "event_time"),
        task=task_out(event.task),
    )


def summary_out(task: task_pb2.Task) -> TaskSummary:
    full = task_out(task)
    return TaskSummary(
        task_id=full.task_id,
        status=full.status,
        attempt=full.attempt,
        result=full.result,
        error=full.error,
    )


# -- REST -> proto ---------------------------------------------------------------------------


def schedule_request(body: ScheduleTaskBody, request_id: str = "") -> pb.ScheduleTaskRequest:
    request = pb.ScheduleTaskRequest(
        request_id=request_id or body.request_id, depends_on=body.depends_on
    )
    task_fields_into(request, body)
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


WaitReasonCodeName = Literal[
    "NOT_DUE",
    "RETRY_BACKOFF",
    "BLOCKED_BY_DEPENDENCIES",
    "QUEUE_PAUSED",
    "RATE_LIMITED",
    "QUEUE_CONCURRENCY_LIMIT",
    "KEY_CONCURRENCY_LIMIT",
    "BEHIND_OTHER_TASKS",
    "NO_WORKER_FOR_QUEUE",
    "DISPATCHED_WAITING_FOR_WORKER",
]
WAIT_REASON_PREFIX = "WAIT_REASON_CODE_"


class WaitReasonOut(BaseModel):
    code: WaitReasonCodeName
    message: str
    until: datetime | None = Field(description="When it ends, where that is known.")
    task_ids: list[str] = Field(description="BLOCKED_BY_DEPENDENCIES: the tasks waited for.")
    count: int = Field(description="The tasks holding the slots, ahead of it, or at the broker.")
    limit: int = Field(description="The cap those count against; 0: none.")


class ExplanationOut(BaseModel):
    task_id: str
    status: StatusName
    reasons: list[WaitReasonOut] = Field(
        description="What holds the task back, the first one first; empty when it runs or ended."
    )
    worker: str = Field(description="RUNNING: the worker process running it.")
    lease_expire_time: datetime | None = Field(description="RUNNING: when its lease expires.")


def explanation_out(explained: pb.ExplainTaskResponse) -> ExplanationOut:
    return ExplanationOut(
        task_id=explained.task_id,
        status=status_name(explained.status),
        reasons=[
            WaitReasonOut(
                code=cast(
                    WaitReasonCodeName,
                    pb.WaitReasonCode.Name(reason.code).removeprefix(WAIT_REASON_PREFIX),
                ),
                message=reason.message,
                until=time_of(reason, "until"),
                task_ids=list(reason.task_ids),
                count=reason.count,
                limit=reason.limit,
            )
            for reason in explained.reasons
        ],
        worker=explained.worker,
        lease_expire_time=time_of(explained, "lease_expire_time"),
    )
