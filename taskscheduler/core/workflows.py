"""The use cases of workflows: validate and store a graph of steps, read, list, cancel and watch
it. Each step is a task; the store releases a step when its last dependency succeeds."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from taskscheduler.core import paging
from taskscheduler.core.errors import (
    IdempotencyConflict,
    InvalidArgument,
    WorkflowFinished,
    WorkflowNotFound,
)
from taskscheduler.core.limits import (
    MAX_REQUEST_ID_LENGTH,
    MAX_STEP_NAME_LENGTH,
    MAX_WORKFLOW_NAME_LENGTH,
    MAX_WORKFLOW_STEPS,
)
from taskscheduler.core.model import (
    READ_SCOPE,
    WRITE_SCOPE,
    Caller,
    FailurePolicy,
    NewTask,
    NewWorkflow,
    ProgressEvent,
    ResourcePosition,
    StatusEvent,
    TaskStatus,
    TaskTemplate,
    Workflow,
    WorkflowStatus,
    WorkflowStep,
)
from taskscheduler.core.payloads import check_text
from taskscheduler.core.permissions import require
from taskscheduler.core.ports import RESYNC, StatusEvents, WorkflowRepository
from taskscheduler.core.tasks import ScheduleRequest, TaskManager, fingerprint


@dataclass(frozen=True)
class StepRequest:
    """One step as a caller describes it: a name, its task, the names of the steps before it."""

    name: str
    task: TaskTemplate
    depends_on: tuple[str, ...] = ()
    run_at: datetime | None = None

    def schedule_request(self) -> ScheduleRequest:
        task = self.task
        return ScheduleRequest(
            kind=task.kind,
            payload=task.payload,
            run_at=self.run_at,
            retry_policy=task.retry_policy,
            timeout=task.timeout,
            queue=task.queue,
            priority=task.priority,
            concurrency_key=task.concurrency_key,
        )


@dataclass(frozen=True)
class WorkflowRequest:
    steps: tuple[StepRequest, ...]
    name: str = ""
    on_failure: FailurePolicy = FailurePolicy.CANCEL_WORKFLOW
    request_id: str = ""


@dataclass(frozen=True)
class WorkflowListRequest:
    statuses: frozenset[WorkflowStatus] = frozenset()
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True)
class WorkflowPage:
    workflows: list[Workflow]
    next_page_token: str


@dataclass(frozen=True)
class WorkflowEvent:
    """What a workflow's watcher receives: the workflow's status; the step that changed (None
    for a whole snapshot); the whole workflow in the first event, after missed events, and in
    the last."""

    status: WorkflowStatus
    step: WorkflowStep | None = None
    event_time: datetime | None = None
    workflow: Workflow | None = None


def parse_workflow_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument("workflow_id", f"{value[:64]!r} is not a UUID") from None


def check_graph(steps: tuple[StepRequest, ...]) -> None:
    """Names unique and known, no cycle; InvalidArgument naming the step's field."""
    if not 1 <= len(steps) <= MAX_WORKFLOW_STEPS:
        raise InvalidArgument("steps", f"must hold 1 to {MAX_WORKFLOW_STEPS} steps")
    index_of: dict[str, int] = {}
    for index, step in enumerate(steps):
        where = f"steps[{index}].name"
        if not step.name or len(step.name) > MAX_STEP_NAME_LENGTH:
            raise InvalidArgument(where, f"must be 1 to {MAX_STEP_NAME_LENGTH} characters")
        check_text(step.name, where)
        if step.name in index_of:
            raise InvalidArgument(where, f"{step.name!r} names steps[{index_of[step.name]}] too")
        index_of[step.name] = index
    for index, step in enumerate(steps):
        where = f"steps[{index}].depends_on"
        if len(set(step.depends_on)) != len(step.depends_on):
            raise InvalidArgument(where, "names a step twice")
        for name in step.depends_on:
            if name not in index_of:
                raise InvalidArgument(where, f"names no step: {name[:MAX_STEP_NAME_LENGTH]!r}")
            if name == step.name:
                raise InvalidArgument(where, "names the step itself")
    cycle = _step_in_cycle(steps)
    if cycle is not None:
        raise InvalidArgument(
            f"steps[{cycle}].depends_on", f"makes a cycle through {steps[cycle].name!r}"
        )


def _step_in_cycle(steps: tuple[StepRequest, ...]) -> int | None:
    """The index of a step on a cycle, or None. Kahn's algorithm leaves the steps on cycles and
    those below them; walking up the dependencies among those left comes back to a step on one."""
    waiting = {step.name: len(step.depends_on) for step in steps}
    dependents: dict[str, list[str]] = {step.name: [] for step in steps}
    for step in steps:
        for name in step.depends_on:
            dependents[name].append(step.name)
    ready = [name for name, count in waiting.items() if count == 0]
    while ready:
        for dependent in dependents[ready.pop()]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    left = {step.name: step for step in steps if waiting[step.name] > 0}
    if not left:
        return None
    seen: list[str] = []
    name = next(iter(left))
    while name not in seen:
        seen.append(name)
        name = next(parent for parent in left[name].depends_on if parent in left)
    return next(i for i, step in enumerate(steps) if step.name == name)


def _fingerprint(request: WorkflowRequest) -> str:
    canonical = {
        "name": request.name,
        "on_failure": request.on_failure.value,
        "steps": [
            [step.name, list(step.depends_on), fingerprint(step.schedule_request())]
            for step in request.steps
        ],
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


class WorkflowManager:
    """Validates workflows (each step's task as ScheduleTask would), stores them, and reads
    them back; the steps flow through their queues as tasks once released."""

    def __init__(
        self, repository: WorkflowRepository, tasks: TaskManager, events: StatusEvents
    ) -> None:
        self._repository = repository
        self._tasks = tasks
        self._events = events

    async def create(self, caller: Caller, request: WorkflowRequest) -> Workflow:
        require(caller, WRITE_SCOPE)
        new = await self._prepare(caller, request)
        workflow, created = await self._repository.create(new)
        if not created and workflow.request_fingerprint != new.request_fingerprint:
            raise IdempotencyConflict(
                f"request_id {new.request_id!r} was already used for a different request"
            )
        return workflow

    async def _prepare(self, caller: Caller, request: WorkflowRequest) -> NewWorkflow:
        if len(request.name) > MAX_WORKFLOW_NAME_LENGTH:
            raise InvalidArgument("name", f"must be at most {MAX_WORKFLOW_NAME_LENGTH} characters")
        check_text(request.name, "name")
        check_text(request.request_id, "request_id")
        if len(request.request_id) > MAX_REQUEST_ID_LENGTH:
            raise InvalidArgument(
                "request_id", f"must be at most {MAX_REQUEST_ID_LENGTH} characters"
            )
        check_graph(request.steps)
        workflow_id = uuid.uuid4()
        now = datetime.now(UTC)
        news: list[NewTask] = []
        for index, step in enumerate(request.steps):
            if step.run_at is not None and step.run_at.tzinfo is None:
                raise InvalidArgument(f"steps[{index}].run_at", "must carry a time zone")
            try:
                news.append(await self._tasks.prepare_for(caller, step.schedule_request(), now))
            except InvalidArgument as error:
                raise error.within(f"steps[{index}].task") from None
        id_of = {step.name: new.id for step, new in zip(request.steps, news, strict=True)}
        depended_on = {name for step in request.steps for name in step.depends_on}
        steps = tuple(
            dataclasses.replace(
                new,
                workflow_id=workflow_id,
                step_name=step.name,
                depends_on=tuple(id_of[name] for name in step.depends_on),
                blocked_on=len(step.depends_on),
                status=TaskStatus.BLOCKED if step.depends_on else new.status,
                has_dependents=step.name in depended_on,
            )
            for step, new in zip(request.steps, news, strict=True)
        )
        return NewWorkflow(
            id=workflow_id,
            tenant=caller.tenant,
            name=request.name,
            on_failure=request.on_failure,
            steps=steps,
            request_id=request.request_id,
            request_fingerprint=_fingerprint(request) if request.request_id else "",
        )

    async def get(self, caller: Caller, workflow_id: str) -> Workflow:
        require(caller, READ_SCOPE)
        workflow = await self._repository.get(caller.tenant, parse_workflow_id(workflow_id))
        if workflow is None:
            raise WorkflowNotFound(workflow_id)
        return workflow

    async def list(self, caller: Caller, request: WorkflowListRequest) -> WorkflowPage:
        require(caller, READ_SCOPE)
        page_size = paging.page_size_or_default(request.page_size)
        after = paging.decode_position_token(request.page_token)
        found = await self._repository.list(caller.tenant, request.statuses, page_size + 1, after)
        page = found[:page_size]
        token = ""
        if len(found) > page_size:
            last = page[-1]
            token = paging.encode_position_token(ResourcePosition(last.create_time, last.id))
        return WorkflowPage(page, token)

    async def cancel(self, caller: Caller, workflow_id: str) -> Workflow:
        """Cancels every step that has not finished. FAILED_PRECONDITION once all have."""
        require(caller, WRITE_SCOPE)
        current = await self._repository.get(caller.tenant, parse_workflow_id(workflow_id))
        if current is None:
            raise WorkflowNotFound(workflow_id)
        if current.status.is_terminal:
            raise WorkflowFinished(f"workflow {workflow_id} is already {current.status.value}")
        workflow = await self._repository.cancel(caller.tenant, current.id)
        if workflow is None:  # deleted meanwhile (retention)
            raise WorkflowNotFound(workflow_id)
        return workflow

    async def watch(self, caller: Caller, workflow_id: str) -> AsyncIterator[WorkflowEvent]:
        """The workflow as it stands, then one event per step change, ending once the workflow
        is terminal. A change is read from the notification itself; the workflow is read again
        only for a step it did not know (spawned since), after missed events, and at the end."""
        require(caller, READ_SCOPE)
        parsed = parse_workflow_id(workflow_id)
        async with self._events.subscribe(parsed) as events:
            workflow = await self.get(caller, workflow_id)
            yield WorkflowEvent(workflow.status, workflow=workflow)
            steps = {step.task_id: step for step in workflow.steps}
            if workflow.status.is_terminal:
                return
            async for event in events:
                if isinstance(event, ProgressEvent):
                    continue  # a step's progress is on the step's own stream
                if event is RESYNC or event.task_id not in steps:
                    workflow = await self.get(caller, workflow_id)
                    steps = {step.task_id: step for step in workflow.steps}
                    yield WorkflowEvent(workflow.status, workflow=workflow)
                else:
                    step = steps[event.task_id]
                    if event.version <= step.version:
                        continue  # already in the workflow as read
                    step = _moved(step, event)
                    steps[step.task_id] = step
                    if all(s.status.is_terminal for s in steps.values()):
                        workflow = await self.get(caller, workflow_id)
                        yield WorkflowEvent(workflow.status, step, event.event_time, workflow)
                    else:
                        yield WorkflowEvent(WorkflowStatus.RUNNING, step, event.event_time)
                if workflow.status.is_terminal:
                    return


def _moved(step: WorkflowStep, event: StatusEvent) -> WorkflowStep:
    """The step as an event of its task leaves it."""
    start_time = event.event_time if event.status is TaskStatus.RUNNING else step.start_time
    finish_time = event.event_time if event.status.is_terminal else step.finish_time
    return dataclasses.replace(
        step,
        status=event.status,
        version=event.version,
        start_time=start_time,
        finish_time=finish_time,
    )
