"""The REST bodies of workflows and their proto mappings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import Instant, StatusName, status_name, task_fields_into, time_of
from gateway.schemas.schedules import TaskTemplateBody
from taskscheduler.core.limits import (
    MAX_REQUEST_ID_LENGTH,
    MAX_STEP_NAME_LENGTH,
    MAX_WORKFLOW_NAME_LENGTH,
    MAX_WORKFLOW_STEPS,
)
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1 import workflow_pb2

WorkflowStatusName = Literal["RUNNING", "SUCCESS", "FAILED", "CANCELLED"]
FailurePolicyName = Literal["CANCEL_WORKFLOW", "CONTINUE"]
WORKFLOW_STATUS_PREFIX = "WORKFLOW_STATUS_"
FAILURE_POLICY_PREFIX = "FAILURE_POLICY_"


class StepBody(BaseModel):
    """One step: a name, its task as POST /v1/tasks takes it, the steps it waits for."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_STEP_NAME_LENGTH, examples=["fetch"])
    task: TaskTemplateBody
    depends_on: list[str] = Field(
        default_factory=list,
        max_length=MAX_WORKFLOW_STEPS,
        description="Names of the steps that must succeed before this one starts.",
    )
    run_at: Instant | None = Field(
        default=None, description="The earliest time to run, once released; unset: at once."
    )


class WorkflowBody(BaseModel):
    """A workflow to create: its steps are checked as POST /v1/tasks checks a task, their
    names must be unique, `depends_on` must name steps, and the graph must have no cycle (400
    naming the field: `steps[3].depends_on`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=MAX_WORKFLOW_NAME_LENGTH)
    steps: list[StepBody] = Field(min_length=1, max_length=MAX_WORKFLOW_STEPS)
    on_failure: FailurePolicyName | None = Field(
        default=None,
        description="CANCEL_WORKFLOW (the default): a failed or cancelled step cancels every "
        "unfinished step; CONTINUE: only the steps that depend on it, directly or not.",
    )
    request_id: str = Field(
        default="", max_length=MAX_REQUEST_ID_LENGTH, description="Idempotency key."
    )


class StepOut(BaseModel):
    name: str
    task_id: str = Field(description="The step's task: GET /v1/tasks/{task_id} has it all.")
    status: StatusName
    depends_on: list[str]
    kind: str
    start_time: datetime | None
    finish_time: datetime | None


class WorkflowOut(BaseModel):
    workflow_id: str
    name: str
    status: WorkflowStatusName = Field(
        description="RUNNING while a step has not finished; then FAILED when one failed, else "
        "CANCELLED when one was cancelled, else SUCCESS."
    )
    on_failure: FailurePolicyName
    steps: list[StepOut] = Field(description="Each after the steps it depends on; empty in lists.")
    step_count: int
    create_time: datetime | None
    update_time: datetime | None
    finish_time: datetime | None
    request_id: str


class WorkflowList(BaseModel):
    workflows: list[WorkflowOut] = Field(description="Newest first, without their steps.")
    next_page_token: str


class WorkflowEventOut(BaseModel):
    status: WorkflowStatusName = Field(description="The workflow's status after this event.")
    step: StepOut | None = Field(description="The step that changed; null in a snapshot.")
    event_time: datetime | None
    workflow: WorkflowOut | None = Field(
        description="The whole workflow: first, after missed events, and last."
    )


# -- proto -> REST ---------------------------------------------------------------------------


def workflow_status_name(value: int) -> WorkflowStatusName:
    name = workflow_pb2.WorkflowStatus.Name(workflow_pb2.WorkflowStatus.ValueType(value))
    return cast(WorkflowStatusName, name.removeprefix(WORKFLOW_STATUS_PREFIX))


def step_out(step: workflow_pb2.WorkflowStep) -> StepOut:
    return StepOut(
        name=step.name,
        task_id=step.task_id,
        status=status_name(step.status),
        depends_on=list(step.depends_on),
        kind=step.kind,
        start_time=time_of(step, "start_time"),
        finish_time=time_of(step, "finish_time"),
    )


def workflow_out(workflow: workflow_pb2.Workflow) -> WorkflowOut:
    policy = workflow_pb2.FailurePolicy.Name(workflow.on_failure)
    return WorkflowOut(
        workflow_id=workflow.id,
        name=workflow.name,
        status=workflow_status_name(workflow.status),
        on_failure=cast(FailurePolicyName, policy.removeprefix(FAILURE_POLICY_PREFIX)),
        steps=[step_out(step) for step in workflow.steps],
        step_count=workflow.step_count,
        create_time=time_of(workflow, "create_time"),
        update_time=time_of(workflow, "update_time"),
        finish_time=time_of(workflow, "finish_time"),
        request_id=workflow.request_id,
    )


def event_out(event: pb.StreamWorkflowResponse) -> WorkflowEventOut:
    return WorkflowEventOut(
        status=workflow_status_name(event.status),
        step=step_out(event.step) if event.HasField("step") else None,
        event_time=time_of(event, "event_time"),
        workflow=workflow_out(event.workflow) if event.HasField("workflow") else None,
    )


# -- REST -> proto ---------------------------------------------------------------------------


def create_workflow_request(body: WorkflowBody, request_id: str = "") -> pb.CreateWorkflowRequest:
    request = pb.CreateWorkflowRequest(name=body.name, request_id=request_id or body.request_id)
    if body.on_failure is not None:
        request.on_failure = workflow_pb2.FailurePolicy.Value(
            FAILURE_POLICY_PREFIX + body.on_failure
        )
    for step in body.steps:
        message = request.steps.add(name=step.name, depends_on=step.depends_on)
        task_fields_into(message.task, step.task)
        if step.run_at is not None:
            message.run_at.FromDatetime(step.run_at)
    return request
