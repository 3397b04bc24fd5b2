"""The FastAPI application: the channel to the api, error handlers, middleware, health and
metrics, and the routers of each resource (tasks, queues, schedules, the dashboard)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import (
    dashboard,
    insights,
    overviews,
    queues,
    schedules,
    tasks,
    workers,
    workflows,
)
from gateway.bodylimit import BodyLimit
from gateway.observation import RequestObservation
from gateway.problems import (
    grpc_error_handler,
    http_error_handler,
    problem,
    too_deep_handler,
    validation_error_handler,
)
from taskscheduler.client import CHANNEL_OPTIONS
from taskscheduler.settings import Settings, get_settings
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": "RFC 9457 problem details", "content": {"application/problem+json": {}}}
    for code in (400, 401, 403, 404, 409, 413, 429, 503)
}


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        max_bytes = settings.grpc_max_message_bytes
        options = [
            *CHANNEL_OPTIONS,  # TASKSCHED_API_ADDRESS may name several api replicas
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
    app.state.deadline = settings.gateway_deadline_seconds
    app.add_exception_handler(grpc.aio.AioRpcError, grpc_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RecursionError, too_deep_handler)
    # A body the api's message limit would refuse is refused here, before it is held whole.
    app.add_middleware(BodyLimit, max_bytes=settings.grpc_max_message_bytes)
    app.add_middleware(RequestObservation)

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

    # Declares the bearer scheme (Swagger's Authorize button); the api verifies the tokens.
    bearer = [Depends(HTTPBearer(auto_error=False))]
    for resource in (tasks, queues, schedules, workflows, workers, insights):
        app.include_router(resource.router, dependencies=bearer)
    app.include_router(dashboard.router)
    app.include_router(overviews.router)
    app.mount("/dashboard/static", dashboard.static_files(), name="dashboard-static")
    return app
