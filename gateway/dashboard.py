"""The web dashboard at /dashboard: server-rendered pages over the same gRPC API and auth. A
browser signs in once with a bearer token, kept in an HttpOnly, SameSite=Strict cookie (never
in a URL); a task's page follows it live over the SSE endpoint."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sse_starlette import EventSourceResponse

from gateway import schemas
from gateway.calls import SESSION_COOKIE, call_metadata, task_service
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb

HERE = Path(__file__).parent
STATUSES = [name.removeprefix("TASK_STATUS_") for name, _ in task_pb2.TaskStatus.items()][1:]
SIGNED_OUT = {grpc.StatusCode.UNAUTHENTICATED}
PAGE_SIZE = 25
COUNTS_EVERY = 2.0  # seconds between two counts sent to a dashboard

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/dashboard", include_in_schema=False)


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


def _page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _sign_in_again() -> RedirectResponse:
    return RedirectResponse("/dashboard/sign-in", status_code=303)


def _problem(request: Request, error: grpc.aio.AioRpcError) -> Response:
    if error.code() in SIGNED_OUT:
        return _sign_in_again()
    return _page(
        request, "error.html", status_code=400, code=error.code().name, details=error.details()
    )


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request) -> HTMLResponse:
    return _page(request, "sign_in.html")


@router.post("/sign-in", response_model=None)
async def sign_in(request: Request, token: Annotated[str, Form(max_length=8192)]) -> Response:
    """Keeps the token once the api accepts it for a read."""
    token = token.strip()
    try:
        await task_service(request).ListTasks(
            pb.ListTasksRequest(page_size=1),
            timeout=10,
            metadata=(("authorization", f"Bearer {token}"),),
        )
    except grpc.aio.AioRpcError as error:
        return _page(request, "sign_in.html", status_code=401, error=error.details())
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
    status: Annotated[list[str] | None, Query()] = None,
    kind: Annotated[str, Query(max_length=200)] = "",
    page_token: Annotated[str, Query(max_length=2000)] = "",
) -> Response:
    chosen = [name for name in status or [] if name in STATUSES]
    message = pb.ListTasksRequest(page_size=PAGE_SIZE, page_token=page_token, kind=kind)
    message.statuses.extend(task_pb2.TaskStatus.Value(f"TASK_STATUS_{name}") for name in chosen)
    try:
        listed = await task_service(request).ListTasks(
            message, timeout=10, metadata=call_metadata(request)
        )
    except grpc.aio.AioRpcError as error:
        return _problem(request, error)
    return _page(
        request,
        "tasks.html",
        tasks=[schemas.task_out(task) for task in listed.tasks],
        next_page_token=listed.next_page_token,
        statuses=STATUSES,
        chosen=chosen,
        kind=kind,
    )


@router.get("/counts/events")
async def count_events(request: Request) -> EventSourceResponse:
    """Server-Sent Events: the caller's tasks by status (live ones, and those finished within
    the hour), every COUNTS_EVERY seconds."""

    async def counts() -> AsyncIterator[dict[str, str]]:
        while True:
            try:
                counted = await task_service(request).CountTasks(
                    pb.CountTasksRequest(), timeout=10, metadata=call_metadata(request)
                )
            except grpc.aio.AioRpcError as error:
                yield {"event": "problem", "data": json.dumps({"code": error.code().name})}
                return
            body = {schemas.status_name(count.status): count.count for count in counted.counts}
            yield {"event": "counts", "data": json.dumps(body)}
            await asyncio.sleep(COUNTS_EVERY)

    return EventSourceResponse(counts())


@router.get("/tasks/{task_id}", response_model=None)
async def task_page(request: Request, task_id: str) -> Response:
    try:
        found = await task_service(request).GetTask(
            pb.GetTaskRequest(task_id=task_id), timeout=10, metadata=call_metadata(request)
        )
    except grpc.aio.AioRpcError as error:
        return _problem(request, error)
    return _page(request, "task.html", task=schemas.task_out(found.task))


@router.post("/tasks/{task_id}/cancel", response_model=None)
async def cancel(request: Request, task_id: str) -> Response:
    async def call() -> str:
        await task_service(request).CancelTask(
            pb.CancelTaskRequest(task_id=task_id), timeout=10, metadata=call_metadata(request)
        )
        return task_id

    return await _then_show(request, call)


@router.post("/tasks/{task_id}/retry", response_model=None)
async def retry(request: Request, task_id: str) -> Response:
    async def call() -> str:
        copied: pb.RetryTaskResponse = await task_service(request).RetryTask(
            pb.RetryTaskRequest(task_id=task_id), timeout=10, metadata=call_metadata(request)
        )
        return copied.task.id

    return await _then_show(request, call)


async def _then_show(request: Request, call: Callable[[], Awaitable[str]]) -> Response:
    """Runs a button's call, then shows the task it names (or the error)."""
    try:
        shown = await call()
    except grpc.aio.AioRpcError as error:
        return _problem(request, error)
    return RedirectResponse(f"/dashboard/tasks/{shown}", status_code=303)
