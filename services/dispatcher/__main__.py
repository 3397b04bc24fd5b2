"""`python -m services.dispatcher` starts a dispatcher."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from prometheus_client import REGISTRY

from services.dispatcher.dispatcher import Dispatcher
from services.dispatcher.faults import CrashBeforePublish
from taskscheduler import logs
from taskscheduler.adapters import metrics
from taskscheduler.adapters.broker import make_publisher
from taskscheduler.adapters.postgres.attempt_store import PostgresAttemptStore
from taskscheduler.adapters.postgres.due_tasks import PostgresDueTasks
from taskscheduler.adapters.postgres.engine import make_async_engine, make_sync_engine
from taskscheduler.adapters.postgres.gauges import PostgresGauges
from taskscheduler.adapters.postgres.listener import StatusListener
from taskscheduler.adapters.postgres.queue_repository import PostgresQueueRepository
from taskscheduler.adapters.postgres.schedule_repository import PostgresScheduleRepository
from taskscheduler.adapters.postgres.task_repository import PostgresTaskRepository
from taskscheduler.adapters.postgres.workers import PostgresWorkerRepository
from taskscheduler.adapters.postgres.workflow_repository import PostgresWorkflowRepository
from taskscheduler.core.firer import ScheduleFirer
from taskscheduler.core.kinds import load_handler_modules
from taskscheduler.core.ports import TaskPublisher
from taskscheduler.core.queues import QueueDefaults
from taskscheduler.core.tasks import TaskManager
from taskscheduler.settings import Settings, get_settings

log = logging.getLogger("taskscheduler.dispatcher")


async def run(settings: Settings) -> None:
    engine = make_async_engine(settings, pre_ping=False)
    sync_engine = make_sync_engine(settings)
    attempts = PostgresAttemptStore.from_settings(settings)
    listener = StatusListener(settings.libpq_url)
    celery_publisher = make_publisher(settings)
    await celery_publisher.connect()
    publisher: TaskPublisher = celery_publisher
    if settings.fault_crash_before_publish_file is not None:
        publisher = CrashBeforePublish(publisher, settings.fault_crash_before_publish_file)
    task_repository = PostgresTaskRepository.from_settings(engine, settings)
    tasks = TaskManager(
        repository=task_repository,
        queues=QueueDefaults(PostgresQueueRepository(engine)),
        events=listener,
        kinds=load_handler_modules(settings.handler_modules),
        default_retry_policy=settings.default_retry_policy,
        max_payload_bytes=settings.max_payload_bytes,
        observer=metrics.TaskMetrics(),
    )
    dispatcher = Dispatcher(
        PostgresDueTasks.from_settings(engine, settings),
        ScheduleFirer(PostgresScheduleRepository(engine), tasks),
        attempts,
        publisher,
        listener,
        settings.dispatcher_batch_size,
        settings.dispatcher_idle_poll_seconds,
        maintenance_every_seconds=min(settings.lease_seconds, settings.republish_after_seconds) / 4,
        retention=timedelta(days=settings.retention_days),
        retention_batch_size=settings.retention_batch_size,
        workflows=PostgresWorkflowRepository(
            engine, task_repository, timedelta(seconds=settings.idempotency_window_seconds)
        ),
        workers=PostgresWorkerRepository(engine),
        forget_workers_after=timedelta(seconds=settings.worker_forget_after_seconds),
    )
    await listener.start()
    gauges = PostgresGauges(sync_engine)
    REGISTRY.register(metrics.TasksByStatus(gauges))
    REGISTRY.register(metrics.QueueDepths(gauges))
    REGISTRY.register(metrics.WorkersByState(gauges))
    metrics.serve(settings.metrics_host, settings.dispatcher_metrics_port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    log.info("dispatcher running")
    await dispatcher.run(stopping)
    await listener.stop()
    await engine.dispose()
    sync_engine.dispose()
    attempts.close()


settings = get_settings()
logs.configure(settings.log_format, settings.log_level)
asyncio.run(run(settings))
