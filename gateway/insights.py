"""The overview routes: /v1/failures (ListFailureGroups) and /v1/activity (GetActivity)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.calls import Api
from gateway.schemas import insights as schemas
from gateway.schemas.common import TaskQueue
from taskscheduler.core.limits import MAX_KIND_LENGTH
from taskscheduler.v1 import task_service_pb2 as pb

router = APIRouter()
Queue = Annotated[TaskQueue, Query(description="Only this queue; empty means all.")]


@router.get("/v1/failures", response_model=schemas.FailureGroupList, tags=["tasks"])
async def list_failure_groups(
    api: Api, kind: Annotated[str, Query(max_length=MAX_KIND_LENGTH)] = "", queue: Queue = ""
) -> schemas.FailureGroupList:
    """The FAILED tasks grouped by their last attempt's error type, most failures first; retry
    a group with POST /v1/tasks:batchRetry and `filter.error_type`."""
    response = await api.stub.ListFailureGroups(
        pb.ListFailureGroupsRequest(kind=kind, queue=queue),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return schemas.failure_groups_out(response)


@router.get("/v1/activity", response_model=schemas.ActivityOut, tags=["queues"])
async def get_activity(api: Api, queue: Queue = "") -> schemas.ActivityOut:
    """Each queue's last hour minute by minute: tasks succeeded, failed, started, and how long
    those started waited from their run_at."""
    response = await api.stub.GetActivity(
        pb.GetActivityRequest(queue=queue), timeout=api.deadline, metadata=api.metadata
    )
    return schemas.activity_out(response)
