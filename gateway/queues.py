"""The /v1/queues resource routes: each translates to one TaskService queue RPC."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from gateway.calls import Api
from gateway.params import PageSize, PageToken
from gateway.schemas import queues as schemas
from taskscheduler.core.limits import (
    MAX_QUEUE_NAME_LENGTH,
    QUEUE_NAME_RULE,
)
from taskscheduler.v1 import task_service_pb2 as pb

# No pattern here: the api checks the name (400 naming `name`) after the caller's token.
QueueNameParam = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_QUEUE_NAME_LENGTH,
        description=f"The queue's name: {QUEUE_NAME_RULE}.",
        examples=["default"],
    ),
]


router = APIRouter()


@router.post("/v1/queues", status_code=201, response_model=schemas.QueueOut, tags=["queues"])
async def create_queue(api: Api, body: schemas.QueueBody) -> schemas.QueueOut:
    """Creates a queue; 409 when the name is taken. The queue `default` always exists."""
    response = await api.stub.CreateQueue(
        schemas.create_queue_request(body), timeout=api.deadline, metadata=api.metadata
    )
    return schemas.queue_out(response.queue)


@router.get("/v1/queues", response_model=schemas.QueueList, tags=["queues"])
async def list_queues(
    api: Api,
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> schemas.QueueList:
    """The caller's queues by name, with their counts."""
    response = await api.stub.ListQueues(
        pb.ListQueuesRequest(page_size=page_size, page_token=page_token),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return schemas.QueueList(
        queues=[schemas.queue_out(queue) for queue in response.queues],
        next_page_token=response.next_page_token,
    )


@router.post("/v1/queues/{name}:pause", response_model=schemas.QueueOut, tags=["queues"])
async def pause_queue(api: Api, name: QueueNameParam) -> schemas.QueueOut:
    """Stops the queue's tasks from starting (they wait, PENDING, until resumed). Idempotent."""
    response = await api.stub.PauseQueue(
        pb.PauseQueueRequest(name=name), timeout=api.deadline, metadata=api.metadata
    )
    return schemas.queue_out(response.queue)


@router.post("/v1/queues/{name}:resume", response_model=schemas.QueueOut, tags=["queues"])
async def resume_queue(api: Api, name: QueueNameParam) -> schemas.QueueOut:
    """Lets a paused queue's tasks flow again. Idempotent."""
    response = await api.stub.ResumeQueue(
        pb.ResumeQueueRequest(name=name), timeout=api.deadline, metadata=api.metadata
    )
    return schemas.queue_out(response.queue)


@router.post("/v1/queues/{name}:purge", response_model=schemas.PurgeOut, tags=["queues"])
async def purge_queue(api: Api, name: QueueNameParam) -> schemas.PurgeOut:
    """Cancels every waiting task of the queue (scheduled, pending, retrying); running ones
    go on."""
    response = await api.stub.PurgeQueue(
        pb.PurgeQueueRequest(name=name), timeout=api.deadline, metadata=api.metadata
    )
    return schemas.PurgeOut(
        queue=schemas.queue_out(response.queue), cancelled_count=response.cancelled_count
    )


@router.get("/v1/queues/{name}", response_model=schemas.QueueOut, tags=["queues"])
async def get_queue(api: Api, name: QueueNameParam) -> schemas.QueueOut:
    """A queue with its settings and counts."""
    response = await api.stub.GetQueue(
        pb.GetQueueRequest(name=name), timeout=api.deadline, metadata=api.metadata
    )
    return schemas.queue_out(response.queue)


@router.patch("/v1/queues/{name}", response_model=schemas.QueueOut, tags=["queues"])
async def update_queue(
    api: Api, name: QueueNameParam, body: schemas.QueuePatchBody
) -> schemas.QueueOut:
    """Changes the settings whose keys the body holds (JSON merge-patch style; null clears
    one: no limit, no default). Limits apply to the next dispatch, task defaults to tasks
    scheduled from then on. An empty body changes nothing."""
    if not body.model_fields_set:
        got = await api.stub.GetQueue(
            pb.GetQueueRequest(name=name), timeout=api.deadline, metadata=api.metadata
        )
        return schemas.queue_out(got.queue)
    response = await api.stub.UpdateQueue(
        schemas.update_queue_request(name, body), timeout=api.deadline, metadata=api.metadata
    )
    return schemas.queue_out(response.queue)


@router.delete(
    "/v1/queues/{name}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted."}},
    tags=["queues"],
)
async def delete_queue(api: Api, name: QueueNameParam) -> Response:
    """Deletes a queue; 409 for `default` and while tasks of the queue wait or run (purge
    it first)."""
    await api.stub.DeleteQueue(
        pb.DeleteQueueRequest(name=name), timeout=api.deadline, metadata=api.metadata
    )
    return Response(status_code=204)
