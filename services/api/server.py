"""Wires the api: engine, listener and servicer on a grpc.aio server with health and
reflection; stops gracefully (health NOT_SERVING, in-flight calls finish)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.auth import TokenVerifier
from services.api.observation import CallObservation
from services.api.processes import run_processes
from services.api.servicer import TaskServicer, add_task_service
from taskscheduler import logs, tracing
from taskscheduler.adapters import metrics
from taskscheduler.adapters.broker import make_publisher
from taskscheduler.adapters.postgres.engine import make_async_engine
from taskscheduler.adapters.postgres.insights import PostgresInsights
from taskscheduler.adapters.postgres.listener import StatusListener
from taskscheduler.adapters.postgres.queue_repository import PostgresQueueRepository
from taskscheduler.adapters.postgres.schedule_repository import PostgresScheduleRepository
from taskscheduler.adapters.postgres.task_repository import PostgresTaskRepository
from taskscheduler.adapters.postgres.wait_facts import PostgresWaitFacts
from taskscheduler.adapters.postgres.workers import PostgresWorkerRepository
from taskscheduler.adapters.postgres.workflow_repository import PostgresWorkflowRepository
from taskscheduler.adapters.ratelimit import RedisRateLimiter
from taskscheduler.core.bulk import BulkActions
from taskscheduler.core.explain import TaskExplainer
from taskscheduler.core.insights import Insights
from taskscheduler.core.kinds import load_handler_modules
from taskscheduler.core.limits import MAX_METADATA_BYTES
from taskscheduler.core.queues import QueueDefaults, QueueManager
from taskscheduler.core.schedules import ScheduleManager
from taskscheduler.core.tasks import TaskManager
from taskscheduler.core.workers import WorkerManager
from taskscheduler.core.workflows import WorkflowManager
from taskscheduler.settings import Settings, get_settings
from taskscheduler.v1 import task_service_pb2

log = logging.getLogger("taskscheduler.api")

SERVICE_NAME = task_service_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name


@dataclass
class RunningApi:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    engine: AsyncEngine
    listener: StatusListener
    limiter: RedisRateLimiter | None
    grace_seconds: float

    async def stop(self) -> None:
        """Health goes NOT_SERVING first, so balancers drain us; then in-flight calls finish."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.grace_seconds)
        await self.listener.stop()
        if self.limiter is not None:
            await self.limiter.close()
        await self.engine.dispose()


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS when a certificate is configured; client certificates required when a client CA is."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    client_ca = settings.tls_client_ca_file
    return grpc.ssl_server_credentials(
        [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
        root_certificates=client_ca.read_bytes() if client_ca else None,
        require_client_auth=client_ca is not None,
    )


async def start_api(settings: Settings) -> RunningApi:
    kinds = load_handler_modules(settings.handler_modules)
    engine = make_async_engine(settings)
    listener = StatusListener(settings.libpq_url)
    await listener.start()
    queue_repository = PostgresQueueRepository(engine)
    publisher = make_publisher(settings)
    await publisher.connect()
    task_repository = PostgresTaskRepository.from_settings(
        engine, settings, publisher, metrics.observe_let_through
    )
    manager = TaskManager(
        repository=task_repository,
        queues=QueueDefaults(queue_repository),
        events=listener,
        kinds=kinds,
        default_retry_policy=settings.default_retry_policy,
        max_payload_bytes=settings.max_payload_bytes,
        observer=metrics.TaskMetrics(),
    )
    max_bytes = settings.grpc_max_message_bytes
    server = grpc.aio.server(
        interceptors=[CallObservation()],
        options=[
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", max_bytes),
            ("grpc.max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.so_reuseport", 1),  # api processes side by side on one port
        ],
    )
    limiter = None
    if settings.rate_limit_rps > 0:
        limiter = RedisRateLimiter(
            settings.rate_limit_redis_url or settings.redis_url,
            settings.rate_limit_rps,
            settings.rate_limit_burst,
            settings.rate_limit_fail_open,
        )
    servicer = TaskServicer(
        manager,
        QueueManager(queue_repository),
        ScheduleManager(PostgresScheduleRepository(engine), manager),
        WorkflowManager(
            PostgresWorkflowRepository(
                engine, task_repository, timedelta(seconds=settings.idempotency_window_seconds)
            ),
            manager,
            listener,
        ),
        WorkerManager(PostgresWorkerRepository(engine)),
        TaskExplainer(PostgresWaitFacts(engine), settings.dispatch_ahead),
        BulkActions(manager, task_repository),
        Insights(PostgresInsights(engine)),
        TokenVerifier(settings),
        limiter,
    )
    add_task_service(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    credentials = server_credentials(settings)
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningApi(
        server,
        port,
        health_servicer,
        engine,
        listener,
        limiter,
        settings.grpc_shutdown_grace_seconds,
    )


async def serve(settings: Settings) -> None:
    api = await start_api(settings)
    log.info("TaskService listening on %s:%d", settings.grpc_host, api.port)
    metrics.serve(settings.metrics_host, settings.api_metrics_port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log.info("shutting down: draining in-flight calls")
    await api.stop()


def main() -> None:
    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level)
    if settings.api_processes > 1:
        sys.exit(run_processes(settings))
    tracing.configure("taskscheduler-api")
    if settings.event_loop == "uvloop":
        import uvloop

        uvloop.run(serve(settings))
        return
    asyncio.run(serve(settings))
