"""The task routes: the seed's two endpoints and /v1/tasks, each translating to one
TaskService task RPC."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Query
from sse_starlette import EventSourceResponse

from gateway.calls import Api, event_stream
from gateway.params import PageSize, PageToken, PayloadFilter
from gateway.schemas import bulk
from gateway.schemas import tasks as schemas
from gateway.schemas.common import STATUS_PREFIX, StatusName
from taskscheduler.core.limits import (
    MAX_BATCH_SIZE,
    MAX_ERROR_TYPE_LENGTH,
    MAX_KIND_LENGTH,
    MAX_QUEUE_NAME_LENGTH,
    MAX_REQUEST_ID_LENGTH,
)
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb

DEMO_TASK = ("demo.sleep", {"seconds": 2})
TaskId = Annotated[uuid.UUID, Path(description="The task's UUID.")]
IdempotencyKey = Annotated[str, Header(max_length=MAX_REQUEST_ID_LENGTH)]

router = APIRouter()


@router.post("/run-task/", response_model=schemas.RunTaskResponse, tags=["seed"])
async def run_task(
    api: Api, body: Annotated[schemas.RunTaskBody | None, Body()] = None
) -> schemas.RunTaskResponse:
    """Schedules the demo task (or the kind, payload, queue, priority and concurrency key
    given) and answers its id."""
    if body is None:
        message = pb.ScheduleTaskRequest(kind=DEMO_TASK[0])
        message.payload.update(DEMO_TASK[1])
    else:
        message = schemas.run_task_request(body)
    response = await api.stub.ScheduleTask(message, timeout=api.deadline, metadata=api.metadata)
    return schemas.RunTaskResponse(message="Task scheduled successfully!", task_id=response.task.id)


@router.get("/tasks/{task_id}", response_model=schemas.TaskSummary, tags=["seed"])
async def task_status(api: Api, task_id: TaskId) -> schemas.TaskSummary:
    """The short status of a task."""
    response = await api.stub.GetTask(
        pb.GetTaskRequest(task_id=str(task_id)), timeout=api.deadline, metadata=api.metadata
    )
    return schemas.summary_out(response.task)


@router.post("/v1/tasks", status_code=201, response_model=schemas.TaskOut, tags=["tasks"])
async def create_task(
    api: Api, body: schemas.ScheduleTaskBody, idempotency_key: IdempotencyKey = ""
) -> schemas.TaskOut:
    """Schedules a task. `Idempotency-Key` (or `request_id`) makes retries safe."""
    message = schemas.schedule_request(body, request_id=idempotency_key)
    response = await api.stub.ScheduleTask(message, timeout=api.deadline, metadata=api.metadata)
    return schemas.task_out(response.task)


@router.post(
    "/v1/tasks:batchCreate",
    status_code=201,
    response_model=schemas.BatchCreateResponse,
    tags=["tasks"],
    description=f"Up to {MAX_BATCH_SIZE:,} tasks in one call, all or none; `request_id` per item "
    "for idempotency.",
)
async def batch_create(api: Api, body: schemas.BatchCreateBody) -> schemas.BatchCreateResponse:
    message = pb.BatchScheduleTasksRequest(
        requests=[schemas.schedule_request(item) for item in body.requests]
    )
    response = await api.stub.BatchScheduleTasks(
        message, timeout=api.deadline, metadata=api.metadata
    )
    return schemas.BatchCreateResponse(tasks=[schemas.task_out(t) for t in response.tasks])


@router.post("/v1/tasks:batchCancel", response_model=bulk.BatchCancelOut, tags=["tasks"])
async def batch_cancel(api: Api, body: bulk.BulkBody) -> bulk.BatchCancelOut:
    """Cancels up to 1,000 tasks by id, or every task `filter` matches (created before the
    call), each as `:cancel` does; the answer counts what was done and names what was not."""
    message = pb.BatchCancelTasksRequest()
    bulk.fill_request(body, message)
    response = await api.stub.BatchCancelTasks(
        message, timeout=api.bulk_deadline, metadata=api.metadata
    )
    return bulk.cancel_out(response)


@router.post("/v1/tasks:batchRetry", response_model=bulk.BatchRetryOut, tags=["tasks"])
async def batch_retry(api: Api, body: bulk.BulkBody) -> bulk.BatchRetryOut:
    """Retries up to 1,000 finished tasks by id, or every task `filter` matches, each as
    `:retry` does; repeating it makes no second copy of a task."""
    message = pb.BatchRetryTasksRequest()
    bulk.fill_request(body, message)
    response = await api.stub.BatchRetryTasks(
        message, timeout=api.bulk_deadline, metadata=api.metadata
    )
    return bulk.retry_out(response)


@router.get("/v1/tasks", response_model=schemas.TaskList, tags=["tasks"])
async def list_tasks(
    api: Api,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    status: Annotated[list[StatusName] | None, Query()] = None,
    kind: Annotated[str, Query(max_length=MAX_KIND_LENGTH)] = "",
    queue: Annotated[
        str, Query(max_length=MAX_QUEUE_NAME_LENGTH, description="Only tasks of this queue.")
    ] = "",
    schedule_id: Annotated[
        uuid.UUID | None, Query(description="Only tasks made by this schedule.")
    ] = None,
    workflow_id: Annotated[
        uuid.UUID | None, Query(description="Only the steps of this workflow.")
    ] = None,
    task_id_prefix: Annotated[
        str,
        Query(max_length=36, description="Only tasks whose id starts so (hex digits, dashes)."),
    ] = "",
    error_type: Annotated[
        str,
        Query(
            max_length=MAX_ERROR_TYPE_LENGTH,
            description="Only tasks whose last attempt ended with this error type.",
        ),
    ] = "",
    payload_contains: PayloadFilter = None,
) -> schemas.TaskList:
    """Tasks newest first; repeat `status` to select several."""
    message = pb.ListTasksRequest(
        page_size=page_size,
        page_token=page_token,
        kind=kind,
        queue=queue,
        schedule_id=str(schedule_id) if schedule_id else "",
        workflow_id=str(workflow_id) if workflow_id else "",
        task_id_prefix=task_id_prefix,
        statuses=[task_pb2.TaskStatus.Value(STATUS_PREFIX + s) for s in status or []],
        error_type=error_type,
    )
    if payload_contains is not None:
        message.payload_contains.update(payload_contains)
    response = await api.stub.ListTasks(message, timeout=api.deadline, metadata=api.metadata)
    return schemas.TaskList(
        tasks=[schemas.task_out(task) for task in response.tasks],
        next_page_token=response.next_page_token,
    )


@router.post(
    "/v1/tasks/{task_id}:retry", status_code=201, response_model=schemas.TaskOut, tags=["tasks"]
)
async def retry_task(
    api: Api, task_id: TaskId, idempotency_key: IdempotencyKey = ""
) -> schemas.TaskOut:
    """Schedules a copy of a finished task to run now; 409 while it has not finished."""
    response = await api.stub.RetryTask(
        pb.RetryTaskRequest(task_id=str(task_id), request_id=idempotency_key),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return schemas.task_out(response.task)


@router.post("/v1/tasks/{task_id}:cancel", response_model=schemas.TaskOut, tags=["tasks"])
async def cancel_task(api: Api, task_id: TaskId) -> schemas.TaskOut:
    """Cancels a task that has not finished; 409 when it has."""
    response = await api.stub.CancelTask(
        pb.CancelTaskRequest(task_id=str(task_id)), timeout=api.deadline, metadata=api.metadata
    )
    return schemas.task_out(response.task)


# Before /v1/tasks/{task_id}, which would take "<id>:explain" for an id.
@router.get("/v1/tasks/{task_id}:explain", response_model=schemas.ExplanationOut, tags=["tasks"])
async def explain_task(api: Api, task_id: TaskId) -> schemas.ExplanationOut:
    """Why the task has not started: every reason that holds it back now, the first one first
    (`code`, `message`, `until`); for a RUNNING task, its worker and lease."""
    response = await api.stub.ExplainTask(
        pb.ExplainTaskRequest(task_id=str(task_id)), timeout=api.deadline, metadata=api.metadata
    )
    return schemas.explanation_out(response)


@router.get("/v1/tasks/{task_id}", response_model=schemas.TaskOut, tags=["tasks"])
async def get_task(api: Api, task_id: TaskId) -> schemas.TaskOut:
    """A task with every attempt."""
    response = await api.stub.GetTask(
        pb.GetTaskRequest(task_id=str(task_id)), timeout=api.deadline, metadata=api.metadata
    )
    return schemas.task_out(response.task)


@router.get(
    "/v1/tasks/{task_id}/events",
    tags=["tasks"],
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "text/event-stream of `status` events (the task) and `progress` "
            "events (the running handler's reports)"
        }
    },
)
async def task_events(api: Api, task_id: TaskId) -> EventSourceResponse:
    """Server-Sent Events: the current state, then each change and each progress report of the
    running handler; closes after a terminal change."""
    # No deadline: the stream lasts as long as the task, and the client's disconnect ends it.
    call = api.stub.StreamStatus(
        pb.StreamStatusRequest(task_id=str(task_id)), metadata=api.metadata
    )
    return await event_stream(call, _status_event)


def _status_event(message: pb.StreamStatusResponse) -> dict[str, str]:
    if message.kind == pb.TASK_EVENT_KIND_PROGRESS:
        body = schemas.progress_event_out(message).model_dump(mode="json")
        return {"event": "progress", "data": json.dumps(body)}
    body = schemas.event_out(message).model_dump(mode="json")
    return {"event": "status", "data": json.dumps(body)}
