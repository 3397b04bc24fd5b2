"""The Celery app of the workers and its one thin task: execute a task id.

Start with `celery -A services.worker.app worker`. The message is only a wake-up call: the
claim in PostgreSQL decides whether this delivery runs anything.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
import time
import uuid

from celery import Task
from celery.exceptions import Reject
from celery.signals import worker_init, worker_process_init

from taskscheduler.adapters.broker import EXECUTE_TASK, make_celery_app
from taskscheduler.adapters.postgres.attempt_store import PostgresAttemptStore
from taskscheduler.adapters.postgres.engine import make_sync_engine
from taskscheduler.core.errors import StorageUnavailable
from taskscheduler.core.execution import Interrupts, TaskExecutor
from taskscheduler.core.kinds import load_handler_modules
from taskscheduler.settings import get_settings

log = logging.getLogger("taskscheduler.worker")

settings = get_settings()
if settings.worker_metrics_port:
    # The pool processes count attempts and the main process serves the sum: prometheus_client
    # chooses this multiprocess mode when it is first imported, from this folder's name.
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="taskscheduler-worker-metrics-")
    )
from taskscheduler.adapters import metrics  # noqa: E402 (after the folder is named)

app = make_celery_app(settings)
kinds = load_handler_modules(settings.handler_modules)

STORAGE_RETRY_DELAY_SECONDS = 1.0

_executor: TaskExecutor | None = None


def _interrupt_handler() -> None:
    """Raises SoftTimeLimitExceeded in the running handler (billiard's SIGUSR1 handler)."""
    os.kill(os.getpid(), signal.SIGUSR1)


def _kill_process() -> None:
    """The handler ignored its interrupt: end this pool process; the lease reaper records it."""
    log.error("handler did not stop; killing pool process %d", os.getpid())
    os._exit(1)


INTERRUPTS = Interrupts(interrupt=_interrupt_handler, kill=_kill_process)


def _build_executor() -> TaskExecutor:
    engine = make_sync_engine(settings)
    worker_name = f"{socket.gethostname()}:{os.getpid()}"
    return TaskExecutor(
        PostgresAttemptStore(engine),
        kinds,
        worker_name,
        settings.lease,
        INTERRUPTS,
        observer=metrics.AttemptMetrics(),
    )


@worker_init.connect
def _serve_metrics(**_: object) -> None:
    """The main process serves what every pool process counted."""
    if not settings.worker_metrics_port:
        return
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    metrics.serve(settings.metrics_host, settings.worker_metrics_port, registry)


@worker_process_init.connect
def _init_child_process(**_: object) -> None:
    """Each pool process gets its own engine: connections must not cross a fork."""
    global _executor
    _executor = _build_executor()


def executor() -> TaskExecutor:
    global _executor
    if _executor is None:
        _executor = _build_executor()
    return _executor


@app.task(name=EXECUTE_TASK, bind=True)
def execute(self: Task, task_id: str, attempt: int) -> str:
    """Claims and runs one attempt of task_id; `attempt` is for logs and tracing only."""
    try:
        outcome = executor().execute(uuid.UUID(task_id))
    except StorageUnavailable:
        # Hand the message back rather than lose it; the database may be restarting.
        log.warning("database unavailable; requeueing task %s", task_id)
        time.sleep(STORAGE_RETRY_DELAY_SECONDS)
        raise Reject("database unavailable", requeue=True) from None
    log.info("task %s attempt %s: %s", task_id, attempt, outcome.value)
    return outcome.value
