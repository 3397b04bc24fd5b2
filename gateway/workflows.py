"""The /v1/workflows resource routes: each translates to one TaskService workflow RPC."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from sse_starlette import EventSourceResponse

from gateway.calls import Api, event_stream
from gateway.params import PageSize, PageToken
from gateway.schemas import workflows as schemas
from taskscheduler.core.limits import MAX_REQUEST_ID_LENGTH
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1 import workflow_pb2

WorkflowId = Annotated[uuid.UUID, Path(description="The workflow's UUID.")]
IdempotencyKey = Annotated[str, Header(max_length=MAX_REQUEST_ID_LENGTH)]

router = APIRouter()


@router.post(
    "/v1/workflows", status_code=201, response_model=schemas.WorkflowOut, tags=["workflows"]
)
async def create_workflow(
    api: Api, body: schemas.WorkflowBody, idempotency_key: IdempotencyKey = ""
) -> schemas.WorkflowOut:
    """Creates a workflow, all or none. `Idempotency-Key` (or `request_id`) makes retries
    safe."""
    response = await api.stub.CreateWorkflow(
        schemas.create_workflow_request(body, idempotency_key),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return schemas.workflow_out(response.workflow)


@router.get("/v1/workflows", response_model=schemas.WorkflowList, tags=["workflows"])
async def list_workflows(
    api: Api,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    status: Annotated[list[schemas.WorkflowStatusName] | None, Query()] = None,
) -> schemas.WorkflowList:
    """The caller's workflows, newest first; repeat `status` to select several."""
    statuses = [
        workflow_pb2.WorkflowStatus.Value(schemas.WORKFLOW_STATUS_PREFIX + name)
        for name in status or []
    ]
    response = await api.stub.ListWorkflows(
        pb.ListWorkflowsRequest(page_size=page_size, page_token=page_token, statuses=statuses),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return schemas.WorkflowList(
        workflows=[schemas.workflow_out(workflow) for workflow in response.workflows],
        next_page_token=response.next_page_token,
    )


@router.get("/v1/workflows/{workflow_id}", response_model=schemas.WorkflowOut, tags=["workflows"])
async def get_workflow(api: Api, workflow_id: WorkflowId) -> schemas.WorkflowOut:
    """A workflow with its steps."""
    response = await api.stub.GetWorkflow(
        pb.GetWorkflowRequest(workflow_id=str(workflow_id)),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return schemas.workflow_out(response.workflow)


@router.post(
    "/v1/workflows/{workflow_id}:cancel", response_model=schemas.WorkflowOut, tags=["workflows"]
)
async def cancel_workflow(api: Api, workflow_id: WorkflowId) -> schemas.WorkflowOut:
    """Cancels every step that has not finished; 409 when the workflow has finished."""
    response = await api.stub.CancelWorkflow(
        pb.CancelWorkflowRequest(workflow_id=str(workflow_id)),
        timeout=api.deadline,
        metadata=api.metadata,
    )
    return schemas.workflow_out(response.workflow)


@router.get(
    "/v1/workflows/{workflow_id}/events",
    tags=["workflows"],
    response_class=EventSourceResponse,
    responses={200: {"description": "text/event-stream of `workflow` and `step` events"}},
)
async def workflow_events(api: Api, workflow_id: WorkflowId) -> EventSourceResponse:
    """Server-Sent Events: the workflow as it stands (`workflow`), then each step's change
    (`step`); closes once the workflow is terminal (its last event carries it whole)."""
    # No deadline: the stream lasts as long as the workflow; the client's disconnect ends it.
    call = api.stub.StreamWorkflow(
        pb.StreamWorkflowRequest(workflow_id=str(workflow_id)), metadata=api.metadata
    )
    return await event_stream(call, _workflow_event)


def _workflow_event(message: pb.StreamWorkflowResponse) -> dict[str, str]:
    body = schemas.event_out(message).model_dump(mode="json")
    return {"event": "step" if message.HasField("step") else "workflow", "data": json.dumps(body)}
