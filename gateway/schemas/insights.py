"""The REST bodies of the overviews (GET /v1/failures, GET /v1/activity) and their proto
mappings."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from gateway.schemas.common import optional_seconds, time_of
from taskscheduler.v1 import task_service_pb2 as pb


class FailureGroupOut(BaseModel):
    """The FAILED tasks whose last attempt ended with one error type."""

    error_type: str
    count: int
    first_finish_time: datetime | None
    last_finish_time: datetime | None
    latest_task_id: str
    latest_message: str


class FailureGroupList(BaseModel):
    groups: list[FailureGroupOut] = Field(description="Most failures first (the first 100).")


class ActivityMinuteOut(BaseModel):
    start_time: datetime | None
    succeeded: int
    failed: int
    started: int = Field(description="Tasks whose latest attempt started in the minute.")
    wait_p50_seconds: float | None = Field(description="Their median wait from run_at.")
    wait_p95_seconds: float | None


class QueueActivityOut(BaseModel):
    queue: str
    minutes: list[ActivityMinuteOut] = Field(description="Sixty, oldest first.")


class ActivityOut(BaseModel):
    queues: list[QueueActivityOut]


def failure_groups_out(response: pb.ListFailureGroupsResponse) -> FailureGroupList:
    return FailureGroupList(
        groups=[
            FailureGroupOut(
                error_type=group.error_type,
                count=group.count,
                first_finish_time=time_of(group, "first_finish_time"),
                last_finish_time=time_of(group, "last_finish_time"),
                latest_task_id=group.latest_task_id,
                latest_message=group.latest_message,
            )
            for group in response.groups
        ]
    )


def activity_out(response: pb.GetActivityResponse) -> ActivityOut:
    return ActivityOut(
        queues=[
            QueueActivityOut(
                queue=queue.queue,
                minutes=[
                    ActivityMinuteOut(
                        start_time=time_of(minute, "start_time"),
                        succeeded=minute.succeeded,
                        failed=minute.failed,
                        started=minute.started,
                        wait_p50_seconds=optional_seconds(minute, "wait_p50"),
                        wait_p95_seconds=optional_seconds(minute, "wait_p95"),
                    )
                    for minute in queue.minutes
                ],
            )
            for queue in response.queues
        ]
    )
