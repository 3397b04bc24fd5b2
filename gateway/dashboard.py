"""The web dashboard at /dashboard: server-rendered pages over the same gRPC API and auth. A
browser signs in once with a bearer token, kept in an HttpOnly, SameSite=Strict cookie (never
in a URL); a task's page follows it live over the SSE endpoint. Tasks, queues (pause, resume,
purge), cron schedules (pause, resume, run now), workflows (their graph, live; cancel) and the
workers (live) each have a page; every button is a plain
form POST, which only pages of this origin can make with the cookie."""

from __future__ import annotations

import asyncio
import json
import shlex
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, field_validator
from sse_starlette import EventSourceResponse

from gateway.calls import SESSION_COOKIE, Api, ApiCall
from gateway.graph import layout
from gateway.params import PageToken, json_object
from gateway.schemas import bulk, queues, schedules, tasks, workers, workflows
from gateway.schemas.common import status_name
from taskscheduler.core.limits import (
    MAX_BULK_IDS,
    MAX_ERROR_TYPE_LENGTH,
    MAX_FILTER_ID_LENGTH,
    MAX_KIND_LENGTH,
    MAX_PAYLOAD_DEPTH,
    MAX_QUEUE_NAME_LENGTH,
    MAX_SEARCH_LENGTH,
    MAX_TOKEN_LENGTH,
)
from taskscheduler.core.payloads import depth
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb

HERE = FilePath(__file__).parent
STATUSES = [name.removeprefix("TASK_STATUS_") for name, _ in task_pb2.TaskStatus.items()][1:]
SIGNED_OUT = {grpc.StatusCode.UNAUTHENTICATED}
WAITING = ["BLOCKED", "SCHEDULED", "PENDING", "RETRYING"]  # what a queue's waiting_count counts
PAGE_SIZE = 25
LIST_SIZE = 100  # queues or schedules a page
COUNTS_EVERY = 2.0  # seconds between two counts sent to a dashboard
WORKERS_EVERY = 2.0  # seconds between two listings of the workers sent to a dashboard

QueueName = Annotated[
    str, Path(min_length=1, max_length=MAX_QUEUE_NAME_LENGTH)
]  # the api checks the name


def wall_time(value: datetime | None, zone: str = "") -> str:
    """A time as a person reads it in `zone` (a schedule's time zone; empty: UTC)."""
    if value is None:
        return ""
    try:
        where = ZoneInfo(zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        where = ZoneInfo("UTC")
    return value.astimezone(where).strftime("%Y-%m-%d %H:%M:%S %Z")


def iso_time(value: datetime | None) -> str:
    """The machine-readable form, for <time datetime=...>."""
    return value.astimezone(UTC).isoformat() if value else ""


templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["wall_time"] = wall_time
templates.env.filters["iso_time"] = iso_time
router = APIRouter(prefix="/dashboard", include_in_schema=False)


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _sign_in_again() -> RedirectResponse:
    return RedirectResponse("/dashboard/sign-in", status_code=303)


def problem_page(request: Request, error: grpc.aio.AioRpcError) -> Response:
    if error.code() in SIGNED_OUT:
        return _sign_in_again()
    return render(
        request, "error.html", status_code=400, code=error.code().name, details=error.details()
    )


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request) -> HTMLResponse:
    return render(request, "sign_in.html")


@router.post("/sign-in", response_model=None)
async def sign_in(
    request: Request, api: Api, token: Annotated[str, Form(max_length=MAX_TOKEN_LENGTH)]
) -> Response:
    """Keeps the token once the api accepts it for a read."""
    token = token.strip()
    try:
        await api.stub.ListTasks(
            pb.ListTasksRequest(page_size=1),
            timeout=api.deadline,
            metadata=(("authorization", f"Bearer {token}"),),
        )
    except grpc.aio.AioRpcError as error:
        return render(request, "sign_in.html", status_code=401, error=error.details())
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/sign-out")
async def sign_out() -> RedirectResponse:
    response = _sign_in_again()
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("", response_model=None)
async def task_list(
    request: Request,
    api: Api,
    status: Annotated[list[str] | None, Query()] = None,
    kind: Annotated[str, Query(max_length=MAX_KIND_LENGTH)] = "",
    queue: Annotated[str, Query(max_length=MAX_QUEUE_NAME_LENGTH)] = "",
    schedule_id: Annotated[str, Query(max_length=MAX_FILTER_ID_LENGTH)] = "",
    workflow_id: Annotated[str, Query(max_length=MAX_FILTER_ID_LENGTH)] = "",
    page_token: PageToken = "",
    search: Annotated[str, Query(max_length=MAX_SEARCH_LENGTH)] = "",
    error_type: Annotated[str, Query(max_length=MAX_ERROR_TYPE_LENGTH)] = "",
    bulk: Annotated[Literal["cancel", "retry", ""], Query()] = "",
    acted: Annotated[int, Query(ge=0)] = 0,
    not_acted: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """The caller's tasks, filtered, with the boxes and buttons of the bulk actions; `bulk`,
    `acted` and `not_acted` tell the outcome of the bulk action that led here. `search` is a
    task id (its page), the start of one, or payload fields (`to=a@b.c`, or a JSON object)."""
    chosen = [name for name in status or [] if name in STATUSES]
    kind, queue, schedule_id = kind.strip(), queue.strip(), schedule_id.strip()
    workflow_id, search, error_type = workflow_id.strip(), search.strip(), error_type.strip()
    if _is_task_id(search):
        return RedirectResponse(f"/dashboard/tasks/{search}", status_code=303)
    try:
        task_id_prefix, payload_contains = search_terms(search)
    except ValueError as error:
        return render(
            request, "error.html", status_code=400, code="INVALID_ARGUMENT", details=str(error)
        )
    message = pb.ListTasksRequest(
        task_id_prefix=task_id_prefix,
        error_type=error_type,
        page_size=PAGE_SIZE,
        page_token=page_token,
        kind=kind,
        queue=queue,
        schedule_id=schedule_id,
        workflow_id=workflow_id,
    )
    message.statuses.extend(task_pb2.TaskStatus.Value(f"TASK_STATUS_{name}") for name in chosen)
    if payload_contains is not None:
        message.payload_contains.update(payload_contains)
    try:
        listed = await api.stub.ListTasks(message, timeout=api.deadline, metadata=api.metadata)
    except grpc.aio.AioRpcError as error:
        return problem_page(request, error)
    filters = {
        "search": search,
        "status": chosen,
        "kind": kind,
        "queue": queue,
        "schedule_id": schedule_id,
        "workflow_id": workflow_id,
        "error_type": error_type,
    }
    return render(
        request,
        "tasks.html",
        tasks=[tasks.task_out(task) for task in listed.tasks],
        next_page=_query(filters, page_token=listed.next_page_token)
        if listed.next_page_token
        else "",
        without_schedule=_query(filters, schedule_id=""),
        without_workflow=_query(filters, workflow_id=""),
        without_error_type=_query(filters, error_type=""),
        statuses=STATUSES,
        chosen=chosen,
        kind=kind,
        queue=queue,
        schedule_id=schedule_id,
        workflow_id=workflow_id,
        error_type=error_type,
        search=search,
        bulk=bulk,
        acted=acted,
        not_acted=not_acted,
    )


def _is_task_id(text: str) -> bool:
    """A whole id, searched for: its page, not a list."""
    try:
        return len(text) == 36 and str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def search_terms(search: str) -> tuple[str, dict[str, Any] | None]:
    """The search box's text as (task id prefix, payload fields): `to=a@b.c vip=true` (a dotted
    name reaches into nested objects; a value that is JSON is read as JSON, else as text) or a
    JSON object match payloads; anything else is the start of a task id."""
    if search.startswith("{"):
        try:
            return "", json_object(search)
        except ValueError as error:
            raise ValueError(f"search: {error}") from None
    if "=" not in search:
        return search, None
    try:
        terms = shlex.split(search)
    except ValueError as error:
        raise ValueError(f"search: {error}") from None
    fields: dict[str, Any] = {}
    for term in terms:
        name, equals, text = term.partition("=")
        if not equals or not name:
            raise ValueError(f"search: {term!r} is not name=value")
        *parents, last = name.split(".")
        place = fields
        for parent in parents:
            place = place.setdefault(parent, {})
            if not isinstance(place, dict):
                raise ValueError(f"search: {name!r} is given twice")
        place[last] = _json_or_text(text)
    if depth(fields) > MAX_PAYLOAD_DEPTH:
        raise ValueError(f"search: nests deeper than {MAX_PAYLOAD_DEPTH} levels")
    return "", fields


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _query(filters: dict[str, Any], **changes: Any) -> str:
    """The task list's URL with these filters, changed as given (empty ones left out)."""
    chosen = {key: value for key, value in {**filters, **changes}.items() if value}
    return f"/dashboard?{urlencode(chosen, doseq=True)}" if chosen else "/dashboard"


# -- bulk actions ----------------------------------------------------------------------------


class BulkForm(BaseModel):
    """The task list's bulk form: the action, and the ticked ids or (all_matching) the list's
    filters."""

    action: Literal["cancel", "retry"]
    task_id: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_BULK_IDS)
    all_matching: bool = False
    status: list[str] = Field(default_factory=list)
    kind: str = Field(default="", max_length=MAX_KIND_LENGTH)
    queue: str = Field(default="", max_length=MAX_QUEUE_NAME_LENGTH)
    schedule_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    error_type: str = Field(default="", max_length=MAX_ERROR_TYPE_LENGTH)
    search: str = Field(default="", max_length=MAX_SEARCH_LENGTH)

    @field_validator("schedule_id", "workflow_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return value or None  # the list's hidden field, empty when it has no such filter

    @field_validator("search")
    @classmethod
    def _searchable(cls, value: str) -> str:
        search_terms(value)  # raises ValueError naming what is wrong
        return value

    def filters(self) -> dict[str, Any]:
        chosen = [name for name in self.status if name in STATUSES]
        return {
            "status": chosen,
            "kind": self.kind,
            "queue": self.queue,
            "schedule_id": str(self.schedule_id or ""),
            "workflow_id": str(self.workflow_id or ""),
            "error_type": self.error_type,
            "search": self.search,
        }

    async def call(self, api: ApiCall, dry_run: bool) -> Any:
        """The bulk RPC, on the ticked ids or (all_matching) the list's filters, as the REST
        route sends it."""
        chosen = None
        if self.all_matching:
            task_id_prefix, payload_contains = search_terms(self.search)
            chosen = bulk.TaskSelectorBody(
                statuses=self.filters()["status"],
                kind=self.kind,
                queue=self.queue,
                schedule_id=self.schedule_id,
                workflow_id=self.workflow_id,
                error_type=self.error_type,
                task_id_prefix=task_id_prefix,
                payload_contains=payload_contains,
            )
        body = bulk.BulkBody(task_ids=self.task_id, filter=chosen, dry_run=dry_run)
        if self.action == "cancel":
            cancel = pb.BatchCancelTasksRequest()
            bulk.fill_request(body, cancel)
            return await api.stub.BatchCancelTasks(
                cancel, timeout=api.bulk_deadline, metadata=api.metadata
            )
        retry = pb.BatchRetryTasksRequest()
        bulk.fill_request(body, retry)
        return await api.stub.BatchRetryTasks(
            retry, timeout=api.bulk_deadline, metadata=api.metadata
        )


Bulk = Annotated[BulkForm, Form()]


@router.post("/tasks/bulk", response_model=None)
async def bulk_confirm(request: Request, api: Api, form: Bulk) -> Response:
    """Asks before a bulk action, stating how many tasks it is for."""
    if not form.all_matching and not form.task_id:
        return RedirectResponse(_query(form.filters()), status_code=303)
    try:
        counted = await form.call(api, dry_run=True)
    except grpc.aio.AioRpcError as error:
        return problem_page(request, error)
    return render(request, "bulk.html", form=form, matched=counted.matched_count)


@router.post("/tasks/bulk/run", response_model=None)
async def bulk_run(request: Request, api: Api, form: Bulk) -> Response:
    async def call() -> str:
        done = await form.call(api, dry_run=False)
        acted = done.cancelled_count if form.action == "cancel" else done.retried_count
        told = {"bulk": form.action, "acted": acted, "not_acted": done.not_acted_count}
        return _query(form.filters(), **told)

    return await _then_go(request, call)


@router.get("/counts/events")
async def count_events(request: Request, api: Api) -> EventSourceResponse:
    """Server-Sent Events: the caller's tasks by status (live ones, and those finished within
    the hour), every COUNTS_EVERY seconds."""

    async def counts() -> dict[str, int]:
        counted = await api.stub.CountTasks(
            pb.CountTasksRequest(), timeout=api.deadline, metadata=api.metadata
        )
        return {status_name(count.status): count.count for count in counted.counts}

    return EventSourceResponse(polled(counts, "counts", COUNTS_EVERY))


async def polled(
    read: Callable[[], Awaitable[Any]], event: str, every: float
) -> AsyncIterator[dict[str, str]]:
    """`read`'s answer as an `event` every `every` seconds; a `problem` event, then the end,
    when the api refuses it."""
    while True:
        try:
            body = await read()
        except grpc.aio.AioRpcError as error:
            yield {"event": "problem", "data": json.dumps({"code": error.code().name})}
            return
        yield {"event": event, "data": json.dumps(body)}
        await asyncio.sleep(every)


async def _list_workers(api: Api) -> list[dict[str, Any]]:
    listed = await api.stub.ListWorkers(
        pb.ListWorkersRequest(), timeout=api.deadline, metadata=api.metadata
    )
    return [workers.worker_out(worker).model_dump(mode="json") for worker in listed.workers]


@router.get("/workers", response_model=None)
async def worker_list(request: Request, api: Api) -> Response:
    """Every worker process, its state, queues and running tasks; live over SSE."""
    try:
        listed = await _list_workers(api)
    except grpc.aio.AioRpcError as error:
        return problem_page(request, error)
    return render(request, "workers.html", workers=listed)


@router.get("/workers/events")
async def worker_events(request: Request, api: Api) -> EventSourceResponse:
    """Server-Sent Events: the workers as ListWorkers gives them, every WORKERS_EVERY seconds."""
    return EventSourceResponse(polled(lambda: _list_workers(api), "workers", WORKERS_EVERY))


@router.get("/tasks/{task_id}", response_model=None)
async def task_page(request: Request, api: Api, task_id: str) -> Response:
    """A task, why it waits (ExplainTask), its attempts; live over the SSE endpoint."""
    try:
        found = await api.stub.GetTask(
            pb.GetTaskRequest(task_id=task_id), timeout=api.deadline, metadata=api.metadata
        )
        explained = await api.stub.ExplainTask(
            pb.ExplainTaskRequest(task_id=task_id), timeout=api.deadline, metadata=api.metadata
        )
    except grpc.aio.AioRpcError as error:
        return problem_page(request, error)
    return render(
        request,
        "task.html",
        task=tasks.task_out(found.task),
        explained=tasks.explanation_out(explained),
    )


@router.post("/tasks/{task_id}/cancel", response_model=None)
async def cancel(request: Request, api: Api, task_id: str) -> Response:
    async def call() -> str:
        await api.stub.CancelTask(
            pb.CancelTaskRequest(task_id=task_id), timeout=api.deadline, metadata=api.metadata
        )
        return _task_url(task_id)

    return await _then_go(request, call)


@router.post("/tasks/{task_id}/retry", response_model=None)
async def retry(request: Request, api: Api, task_id: str) -> Response:
    async def call() -> str:
        copied: pb.RetryTaskResponse = await api.stub.RetryTask(
            pb.RetryTaskRequest(task_id=task_id), timeout=api.deadline, metadata=api.metadata
        )
        return _task_url(copied.task.id)

    return await _then_go(request, call)


# -- queues ----------------------------------------------------------------------------------


@router.get("/queues", response_model=None)
async def queue_list(
    request: Request,
    api: Api,
    page_token: PageToken = "",
    purged: Annotated[str, Query(max_length=MAX_QUEUE_NAME_LENGTH)] = "",
    cancelled: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Every queue with its state, counts and limits; `purged` and `cancelled` tell the outcome
    of the purge that led here."""
    try:
        listed = await api.stub.ListQueues(
            pb.ListQueuesRequest(page_size=LIST_SIZE, page_token=page_token),
            timeout=api.deadline,
            metadata=api.metadata,
        )
    except grpc.aio.AioRpcError as error:
        return problem_page(request, error)
    return render(
        request,
        "queues.html",
        queues=[queues.queue_out(queue) for queue in listed.queues],
        next_page_token=listed.next_page_token,
        purged=purged,
        cancelled=cancelled,
        waiting=WAITING,
    )


@router.post("/queues/{name}/pause", response_model=None)
async def pause_queue(request: Request, api: Api, name: QueueName) -> Response:
    async def call() -> str:
        await api.stub.PauseQueue(
            pb.PauseQueueRequest(name=name), timeout=api.deadline, metadata=api.metadata
        )
        return _queue_url(name)

    return await _then_go(request, call)


@router.post("/queues/{name}/resume", response_model=None)
async def resume_queue(request: Request, api: Api, name: QueueName) -> Response:
    async def call() -> str:
        await api.stub.ResumeQueue(
            pb.ResumeQueueRequest(name=name), timeout=api.deadline, metadata=api.metadata
        )
        return _queue_url(name)

    return await _then_go(request, call)


@router.get("/queues/{name}/purge", response_model=None)
async def purge_page(request: Request, api: Api, name: QueueName) -> Response:
    """Asks before purging: the queue's counts, and a button that purges."""
    try:
        found = await api.stub.GetQueue(
            pb.GetQueueRequest(name=name), timeout=api.deadline, metadata=api.metadata
        )
    except grpc.aio.AioRpcError as error:
        return problem_page(request, error)
    return render(request, "purge.html", queue=queues.queue_out(found.queue))


@router.post("/queues/{name}/purge", response_model=None)
async def purge_queue(request: Request, api: Api, name: QueueName) -> Response:
    async def call() -> str:
        purged: pb.PurgeQueueResponse = await api.stub.PurgeQueue(
            pb.PurgeQueueRequest(name=name), timeout=api.deadline, metadata=api.metadata
        )
        told = urlencode({"purged": name, "cancelled": purged.cancelled_count})
        return f"/dashboard/queues?{told}#{_queue_anchor(name)}"

    return await _then_go(request, call)


def _queue_anchor(name: str) -> str:
    return f"queue-{quote(name, safe='')}"


def _queue_url(name: str) -> str:
    return f"/dashboard/queues#{_queue_anchor(name)}"


# -- schedules -------------------------------------------------------------------------------


@router.get("/schedules", response_model=None)
async def schedule_list(
    request: Request,
    api: Api,
    page_token: PageToken = "",
) -> Response:
    try:
        listed = await api.stub.ListSchedules(
            pb.ListSchedulesRequest(page_size=LIST_SIZE, page_token=page_token),
            timeout=api.deadline,
            metadata=api.metadata,
        )
    except grpc.aio.AioRpcError as error:
        return problem_page(request, error)
    return render(
        request,
        "schedules.html",
        schedules=[schedules.schedule_out(schedule) for schedule in listed.schedules],
        next_page_token=listed.next_page_token,
    )


@router.post("/schedules/{schedule_id}/pause", response_model=None)
async def pause_schedule(request: Request, api: Api, schedule_id: uuid.UUID) -> Response:
    async def call() -> str:
        await api.stub.PauseSchedule(
            pb.PauseScheduleRequest(id=str(schedule_id)),
            timeout=api.deadline,
            metadata=api.metadata,
        )
        return _schedule_url(schedule_id)

    return await _then_go(request, call)


@router.post("/schedules/{schedule_id}/resume", response_model=None)
async def resume_schedule(request: Request, api: Api, schedule_id: uuid.UUID) -> Response:
    async def call() -> str:
        await api.stub.ResumeSchedule(
            pb.ResumeScheduleRequest(id=str(schedule_id)),
            timeout=api.deadline,
            metadata=api.metadata,
        )
        return _schedule_url(schedule_id)

    return await _then_go(request, call)


@router.post("/schedules/{schedule_id}/trigger", response_model=None)
async def trigger_schedule(request: Request, api: Api, schedule_id: uuid.UUID) -> Response:
    """Run now: fires the schedule once, then shows the task it made."""

    async def call() -> str:
        fired: pb.TriggerScheduleResponse = await api.stub.TriggerSchedule(
            pb.TriggerScheduleRequest(id=str(schedule_id)),
            timeout=api.deadline,
            metadata=api.metadata,
        )
        return _task_url(fired.task.id)

    return await _then_go(request, call)


def _schedule_url(schedule_id: uuid.UUID) -> str:
    return f"/dashboard/schedules#schedule-{schedule_id}"


def _task_url(task_id: str) -> str:
    return f"/dashboard/tasks/{quote(task_id, safe='')}"


async def _then_go(request: Request, call: Callable[[], Awaitable[str]]) -> Response:
    """Runs a button's call, then goes to the page it names (or shows the error)."""
    try:
        where = await call()
    except grpc.aio.AioRpcError as error:
        return problem_page(request, error)
    return RedirectResponse(where, status_code=303)


# -- workflows -------------------------------------------------------------------------------


@router.get("/workflows", response_model=None)
async def workflow_list(request: Request, api: Api, page_token: PageToken = "") -> Response:
    try:
        listed = await api.stub.ListWorkflows(
            pb.ListWorkflowsRequest(page_size=LIST_SIZE, page_token=page_token),
            timeout=api.deadline,
            metadata=api.metadata,
        )
    except grpc.aio.AioRpcError as error:
        return problem_page(request, error)
    return render(
        request,
        "workflows.html",
        workflows=[workflows.workflow_out(workflow) for workflow in listed.workflows],
        next_page_token=listed.next_page_token,
    )


@router.get("/workflows/{workflow_id}", response_model=None)
async def workflow_page(request: Request, api: Api, workflow_id: str) -> Response:
    try:
        found = await api.stub.GetWorkflow(
            pb.GetWorkflowRequest(workflow_id=workflow_id),
            timeout=api.deadline,
            metadata=api.metadata,
        )
    except grpc.aio.AioRpcError as error:
        return problem_page(request, error)
    workflow = workflows.workflow_out(found.workflow)
    return render(request, "workflow.html", workflow=workflow, graph=layout(workflow.steps))


@router.post("/workflows/{workflow_id}/cancel", response_model=None)
async def cancel_workflow(request: Request, api: Api, workflow_id: str) -> Response:
    async def call() -> str:
        await api.stub.CancelWorkflow(
            pb.CancelWorkflowRequest(workflow_id=workflow_id),
            timeout=api.deadline,
            metadata=api.metadata,
        )
        return f"/dashboard/workflows/{quote(workflow_id, safe='')}"

    return await _then_go(request, call)
