"""The /v1/queues resource routes: each translates to one TaskService queue RPC."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from gateway import schemas
from gateway.calls import call_metadata, task_service
from taskscheduler.v1 import task_service_pb2 as pb

# No pattern here: the api checks the name (400 naming `name`) after the caller's token.
QueueNameParam = Annotated[
    str,
    Path(
        min_length=1,
        max_length=63,
        description=f"The queue's name: {schemas.QUEUE_NAME_RULE}.",
        examples=["default"],
    ),
]


def register(routes: APIRouter, deadline: float) -> None:
    """Adds the queue routes to `routes` (the `name:verb` routes before `{name}`'s own)."""

    @routes.post("/v1/queues", status_code=201, response_model=schemas.QueueOut, tags=["queues"])
    async def create_queue(request: Request, body: schemas.QueueBody) -> schemas.QueueOut:
        """Creates a queue; 409 when the name is taken. The queue `default` always exists."""
        response = await task_service(request).CreateQueue(
            schemas.create_queue_request(body), timeout=deadline, metadata=call_metadata(request)
        )
        return schemas.queue_out(response.queue)

    @routes.get("/v1/queues", response_model=schemas.QueueList, tags=["queues"])
    async def list_queues(
        request: Request,
        page_size: Annotated[int, Query(ge=0, le=1000, description="0: 50.")] = 0,
        page_token: Annotated[str, Query(max_length=1000)] = "",
    ) -> schemas.QueueList:
        """The caller's queues by name, with their counts."""
        response = await task_service(request).ListQueues(
            pb.ListQueuesRequest(page_size=page_size, page_token=page_token),
            timeout=deadline,
            metadata=call_metadata(request),
        )
        return schemas.QueueList(
            queues=[schemas.queue_out(queue) for queue in response.queues],
            next_page_token=response.next_page_token,
        )

    @routes.post("/v1/queues/{name}:pause", response_model=schemas.QueueOut, tags=["queues"])
    async def pause_queue(request: Request, name: QueueNameParam) -> schemas.QueueOut:
        """Stops the queue's tasks from starting (they wait, PENDING, until resumed). Idempotent."""
        response = await task_service(request).PauseQueue(
            pb.PauseQueueRequest(name=name), timeout=deadline, metadata=call_metadata(request)
        )
        return schemas.queue_out(response.queue)

    @routes.post("/v1/queues/{name}:resume", response_model=schemas.QueueOut, tags=["queues"])
    async def resume_queue(request: Request, name: QueueNameParam) -> schemas.QueueOut:
        """Lets a paused queue's tasks flow again. Idempotent."""
        response = await task_service(request).ResumeQueue(
            pb.ResumeQueueRequest(name=name), timeout=deadline, metadata=call_metadata(request)
        )
        return schemas.queue_out(response.queue)

    @routes.post("/v1/queues/{name}:purge", response_model=schemas.PurgeOut, tags=["queues"])
    async def purge_queue(request: Request, name: QueueNameParam) -> schemas.PurgeOut:
        """Cancels every waiting task of the queue (scheduled, pending, retrying); running ones
        go on."""
        response = await task_service(request).PurgeQueue(
            pb.PurgeQueueRequest(name=name), timeout=deadline, metadata=call_metadata(request)
        )
        return schemas.PurgeOut(
            queue=schemas.queue_out(response.queue), cancelled_count=response.cancelled_count
        )

    @routes.get("/v1/queues/{name}", response_model=schemas.QueueOut, tags=["queues"])
    async def get_queue(request: Request, name: QueueNameParam) -> schemas.QueueOut:
        """A queue with its settings and counts."""
        response = await task_service(request).GetQueue(
            pb.GetQueueRequest(name=name), timeout=deadline, metadata=call_metadata(request)
        )
        return schemas.queue_out(response.queue)

    @routes.patch("/v1/queues/{name}", response_model=schemas.QueueOut, tags=["queues"])
    async def update_queue(
        request: Request, name: QueueNameParam, body: schemas.QueuePatchBody
    ) -> schemas.QueueOut:
        """Changes the settings whose keys the body holds (JSON merge-patch style; null clears
        one: no limit, no default). Limits apply to the next dispatch, task defaults to tasks
        scheduled from then on. An empty body changes nothing."""
        metadata = call_metadata(request)
        if not body.model_fields_set:
            got = await task_service(request).GetQueue(
                pb.GetQueueRequest(name=name), timeout=deadline, metadata=metadata
            )
            return schemas.queue_out(got.queue)
        response = await task_service(request).UpdateQueue(
            schemas.update_queue_request(name, body), timeout=deadline, metadata=metadata
        )
        return schemas.queue_out(response.queue)

    @routes.delete(
        "/v1/queues/{name}",
        status_code=204,
        response_class=Response,
        responses={204: {"description": "Deleted."}},
        tags=["queues"],
    )
    async def delete_queue(request: Request, name: QueueNameParam) -> Response:
        """Deletes a queue; 409 for `default` and while tasks of the queue wait or run (purge
        it first)."""
        await task_service(request).DeleteQueue(
            pb.DeleteQueueRequest(name=name), timeout=deadline, metadata=call_metadata(request)
        )
        return Response(status_code=204)
