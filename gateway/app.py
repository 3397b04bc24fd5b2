"""The FastAPI application: the seed's two endpoints and the /v1 resource routes (tasks here,
queues and schedules in their own modules)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import dashboard, queues, schedules, schemas
from gateway.bodylimit import BodyLimit
from gateway.calls import call_metadata, task_service
from gateway.observation import RequestObservation
from gateway.problems import (
    grpc_error_handler,
    http_error_handler,
    problem,
    too_deep_handler,
    validation_error_handler,
)
from taskscheduler.settings import Settings, get_settings
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

DEMO_TASK = ("demo.sleep", {"seconds": 2})
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": "RFC 9457 problem details", "content": {"application/problem+json": {}}}
    for code in (400, 401, 403, 404, 409, 413, 429, 503)
}
TaskId = Annotated[uuid.UUID, Path(description="The task's UUID.")]


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """TLS to the api when a CA is configured, with a client certificate for mTLS."""
    if settings.api_tls_ca_file is None:
        return None
    cert, key = settings.api_tls_cert_file, settings.api_tls_key_file
    return grpc.ssl_channel_credentials(
        root_certificates=settings.api_tls_ca_file.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    deadline = settings.gateway_deadline_seconds

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        max_bytes = settings.grpc_max_message_bytes
        options = [
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", max_bytes),
        ]
        credentials = channel_credentials(settings)
        if credentials is None:
            channel = grpc.aio.insecure_channel(settings.api_address, options=options)
        else:
            channel = grpc.aio.secure_channel(settings.api_address, credentials, options=options)
        app.state.stub = TaskServiceStub(channel)
        app.state.health = health_pb2_grpc.HealthStub(channel)
        yield
        await channel.close()

    app = FastAPI(
        title="Task Scheduler",
        version="1.0.0",
        description="REST gateway of the taskscheduler.v1.TaskService gRPC API.",
        lifespan=lifespan,
        responses=PROBLEM_RESPONSES,
    )
    app.add_exception_handler(grpc.aio.AioRpcError, grpc_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RecursionError, too_deep_handler)
    # A body the api's message limit would refuse is refused here, before it is held whole.
    app.add_middleware(BodyLimit, max_bytes=settings.grpc_max_message_bytes)
    app.add_middleware(RequestObservation)

    # Declares the bearer scheme (Swagger's Authorize button); the api verifies the tokens.
    routes = APIRouter(dependencies=[Depends(HTTPBearer(auto_error=False))])

    @routes.post("/run-task/", response_model=schemas.RunTaskResponse, tags=["seed"])
    async def run_task(
        request: Request, body: Annotated[schemas.RunTaskBody | None, Body()] = None
    ) -> schemas.RunTaskResponse:
        """Schedules the demo task (or the kind, payload, queue, priority and concurrency key
        given) and answers its id."""
        if body is None:
            message = pb.ScheduleTaskRequest(kind=DEMO_TASK[0])
            message.payload.update(DEMO_TASK[1])
        else:
            message = schemas.run_task_request(body)
        response = await task_service(request).ScheduleTask(
            message, timeout=deadline, metadata=call_metadata(request)
        )
        return schemas.RunTaskResponse(
            message="Task scheduled successfully!", task_id=response.task.id
        )

    @routes.get("/tasks/{task_id}", response_model=schemas.TaskSummary, tags=["seed"])
    async def task_status(request: Request, task_id: TaskId) -> schemas.TaskSummary:
        """The short status of a task."""
        task = (
            await task_service(request).GetTask(
                pb.GetTaskRequest(task_id=str(task_id)),
                timeout=deadline,
                metadata=call_metadata(request),
            )
        ).task
        full = schemas.task_out(task)
        return schemas.TaskSummary(
            task_id=full.task_id,
            status=full.status,
            attempt=full.attempt,
            result=full.result,
            error=full.error,
        )

    @routes.post("/v1/tasks", status_code=201, response_model=schemas.TaskOut, tags=["tasks"])
    async def create_task(
        request: Request,
        body: schemas.ScheduleTaskBody,
        idempotency_key: Annotated[str, Header(max_length=200)] = "",
    ) -> schemas.TaskOut:
        """Schedules a task. `Idempotency-Key` (or `request_id`) makes retries safe."""
        message = schemas.schedule_request(body, request_id=idempotency_key)
        response = await task_service(request).ScheduleTask(
            message, timeout=deadline, metadata=call_metadata(request)
        )
        return schemas.task_out(response.task)

    @routes.post(
        "/v1/tasks:batchCreate",
        status_code=201,
        response_model=schemas.BatchCreateResponse,
        tags=["tasks"],
    )
    async def batch_create(
        request: Request, body: schemas.BatchCreateBody
    ) -> schemas.BatchCreateResponse:
        """Up to 1,000 tasks in one call, all or none; `request_id` per item for idempotency."""
        message = pb.BatchScheduleTasksRequest(
            requests=[schemas.schedule_request(item) for item in body.requests]
        )
        response = await task_service(request).BatchScheduleTasks(
            message, timeout=deadline, metadata=call_metadata(request)
        )
        return schemas.BatchCreateResponse(tasks=[schemas.task_out(t) for t in response.tasks])

    @routes.get("/v1/tasks", response_model=schemas.TaskList, tags=["tasks"])
    async def list_tasks(
        request: Request,
        page_size: Annotated[int, Query(ge=0, le=1000)] = 0,
        page_token: Annotated[str, Query(max_length=1000)] = "",
        status: Annotated[list[schemas.StatusName] | None, Query()] = None,
        kind: Annotated[str, Query(max_length=200)] = "",
        queue: Annotated[str, Query(max_length=63, description="Only tasks of this queue.")] = "",
        schedule_id: Annotated[
            uuid.UUID | None, Query(description="Only tasks made by this schedule.")
        ] = None,
    ) -> schemas.TaskList:
        """Tasks newest first; repeat `status` to select several."""
        message = pb.ListTasksRequest(
            page_size=page_size,
            page_token=page_token,
            kind=kind,
            queue=queue,
            schedule_id=str(schedule_id) if schedule_id else "",
            statuses=[task_pb2.TaskStatus.Value(schemas.STATUS_PREFIX + s) for s in status or []],
        )
        response = await task_service(request).ListTasks(
            message, timeout=deadline, metadata=call_metadata(request)
        )
        return schemas.TaskList(
            tasks=[schemas.task_out(task) for task in response.tasks],
            next_page_token=response.next_page_token,
        )

    @routes.post(
        "/v1/tasks/{task_id}:retry", status_code=201, response_model=schemas.TaskOut, tags=["tasks"]
    )
    async def retry_task(
        request: Request,
        task_id: TaskId,
        idempotency_key: Annotated[str, Header(max_length=200)] = "",
    ) -> schemas.TaskOut:
        """Schedules a copy of a finished task to run now; 409 while it has not finished."""
        response = await task_service(request).RetryTask(
            pb.RetryTaskRequest(task_id=str(task_id), request_id=idempotency_key),
            timeout=deadline,
            metadata=call_metadata(request),
        )
        return schemas.task_out(response.task)

    @routes.post("/v1/tasks/{task_id}:cancel", response_model=schemas.TaskOut, tags=["tasks"])
    async def cancel_task(request: Request, task_id: TaskId) -> schemas.TaskOut:
        """Cancels a task that has not finished; 409 when it has."""
        response = await task_service(request).CancelTask(
            pb.CancelTaskRequest(task_id=str(task_id)),
            timeout=deadline,
            metadata=call_metadata(request),
        )
        return schemas.task_out(response.task)

    @routes.get("/v1/tasks/{task_id}", response_model=schemas.TaskOut, tags=["tasks"])
    async def get_task(request: Request, task_id: TaskId) -> schemas.TaskOut:
        """A task with every attempt."""
        response = await task_service(request).GetTask(
            pb.GetTaskRequest(task_id=str(task_id)),
            timeout=deadline,
            metadata=call_metadata(request),
        )
        return schemas.task_out(response.task)

    @routes.get(
        "/v1/tasks/{task_id}/events",
        tags=["tasks"],
        response_class=EventSourceResponse,
        responses={200: {"description": "text/event-stream of `status` events"}},
    )
    async def task_events(request: Request, task_id: TaskId) -> EventSourceResponse:
        """Server-Sent Events: the current state, then each change; closes after a terminal one."""
        call = task_service(request).StreamStatus(
            pb.StreamStatusRequest(task_id=str(task_id)), metadata=call_metadata(request)
        )
        first = await call.read()  # errors (404, 400) surface here, before the stream starts
        if first is grpc.aio.EOF:
            return EventSourceResponse(iter(()))

        async def events() -> AsyncIterator[dict[str, str]]:
            message = first
            try:
                while message is not grpc.aio.EOF:
                    assert isinstance(message, pb.StreamStatusResponse)
                    body = schemas.event_out(message).model_dump(mode="json")
                    yield {"event": "status", "data": json.dumps(body)}
                    message = await call.read()
            finally:
                call.cancel()

        return EventSourceResponse(events())

    queues.register(routes, deadline)
    schedules.register(routes, deadline)

    @app.get("/healthz", tags=["health"])
    async def healthz(request: Request) -> JSONResponse:
        """200 when the api answers its gRPC health check as SERVING."""
        try:
            reply = await request.app.state.health.Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.aio.AioRpcError:
            return problem(503, "Unavailable", "the task service does not answer")
        serving = reply.status == health_pb2.HealthCheckResponse.SERVING
        if not serving:
            return problem(503, "Unavailable", "the task service is not serving")
        return JSONResponse({"status": "SERVING"})

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics_endpoint() -> Response:
        """Prometheus metrics of this gateway (requests by route and status, durations)."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(routes)
    app.include_router(dashboard.router)
    app.mount("/dashboard/static", dashboard.static_files(), name="dashboard-static")
    return app
