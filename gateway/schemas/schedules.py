"""The REST bodies of cron schedules and their proto mappings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

from google.protobuf import field_mask_pb2
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from gateway.schemas.common import (
    ConcurrencyKey,
    Payload,
    Priority,
    RetryDefaultsOut,
    RetryPolicyBody,
    TaskQueue,
    Timeout,
    duration,
    optional_seconds,
    retry_defaults_out,
    task_fields_into,
    time_of,
)
from taskscheduler.core.limits import (
    MAX_CATCHUP_WINDOW,
    MAX_CRON_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    MAX_KIND_LENGTH,
    MAX_TIME_ZONE_LENGTH,
)
from taskscheduler.protojson import struct_to_dict
from taskscheduler.v1 import schedule_pb2
from taskscheduler.v1 import task_service_pb2 as pb

OverlapName = Literal["SKIP", "ALLOW", "BUFFER_ONE"]
OVERLAP_PREFIX = "OVERLAP_POLICY_"


class TaskTemplateBody(BaseModel):
    """The task each fire makes, as POST /v1/tasks takes it."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=MAX_KIND_LENGTH, examples=["demo.echo"])
    payload: Payload = Field(default_factory=dict, examples=[{"report": "daily"}])
    queue: TaskQueue = ""
    priority: Priority = None
    concurrency_key: ConcurrencyKey = ""
    retry_policy: RetryPolicyBody | None = None
    timeout: Timeout = None


Cron = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_CRON_LENGTH,
        description="Five fields (minute hour day-of-month month day-of-week), six with seconds "
        "first, or @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly.",
        examples=["*/5 * * * *"],
    ),
]
TimeZone = Annotated[
    str,
    Field(
        max_length=MAX_TIME_ZONE_LENGTH,
        description='IANA time zone the cron expression is read in; empty or unset: "UTC".',
        examples=["Europe/Paris"],
    ),
]
CatchupWindow = Annotated[
    float | None,
    Field(
        ge=0,
        le=MAX_CATCHUP_WINDOW.total_seconds(),
        description=f"Seconds (at most {MAX_CATCHUP_WINDOW.days} days): how far back fires "
        "missed while no dispatcher ran are made up, each once; unset: only the latest missed "
        "fire, if within one minute.",
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
Description = Annotated[
    str, Field(max_length=MAX_DESCRIPTION_LENGTH, description="A note for people.")
]


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
            retry_policy=retry_defaults_out(template),
            timeout=optional_seconds(template, "timeout"),
        ),
        overlap=_overlap_name(schedule.overlap),
        catchup_window=optional_seconds(schedule, "catchup_window"),
        paused=schedule.paused,
        description=schedule.description,
        next_fire_times=[stamp.ToDatetime(tzinfo=UTC) for stamp in schedule.next_fire_times],
        last_fire_time=time_of(schedule, "last_fire_time"),
        last_task_id=schedule.last_task_id,
        create_time=time_of(schedule, "create_time"),
        update_time=time_of(schedule, "update_time"),
    )


# -- REST -> proto ---------------------------------------------------------------------------


def _schedule_fields_into(
    message: schedule_pb2.Schedule, body: ScheduleBody | SchedulePatchBody
) -> None:
    if body.cron is not None:
        message.cron = body.cron
    message.time_zone = body.time_zone or ""
    if body.task is not None:
        task_fields_into(message.task, body.task)
    if body.overlap is not None:
        message.overlap = schedule_pb2.OverlapPolicy.Value(OVERLAP_PREFIX + body.overlap)
    if body.catchup_window is not None:
        message.catchup_window.CopyFrom(duration(body.catchup_window))
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
