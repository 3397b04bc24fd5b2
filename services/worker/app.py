"""The Celery app of the workers and its one thin task: execute a task id.

Start with `celery -A services.worker.app worker`. The message is only a wake-up call: the
claim in PostgreSQL decides whether this delivery runs anything.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from celery.signals import (
    setup_logging,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from prometheus_client import values as prometheus_values

from services.worker.queues import serve_queues
from taskscheduler.adapters.broker import EXECUTE_TASK, Delivery, make_celery_app, send_execute
from taskscheduler.adapters.postgres.attempt_store import PostgresAttemptStore
from taskscheduler.adapters.postgres.workers import PostgresWorkerRegistry
from taskscheduler.core.errors import StorageUnavailable
from taskscheduler.core.execution import (
    Interrupts,
    NextAttempt,
    Outcome,
    TaskExecutor,
    no_next_task,
)
from taskscheduler.core.kinds import load_handler_modules
from taskscheduler.core.model import WorkerRegistration
from taskscheduler.core.ports import ClaimedAttempt
from taskscheduler.core.tasks import TaskPreparer
from taskscheduler.core.workers import Heartbeat
from taskscheduler.settings import get_settings

log = logging.getLogger("taskscheduler.worker")

settings = get_settings()
if settings.worker_metrics_port:
    # The pool processes count attempts and the main process serves the sum, in
    # prometheus_client's multiprocess mode: its samples go to this folder. The mode is chosen
    # when prometheus_client is imported, and a Celery plugin may have imported it already
    # (Flower does, as soon as it is installed), so it is chosen again before our metrics exist.
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="taskscheduler-worker-metrics-")
    )
    prometheus_values.ValueClass = prometheus_values.get_value_class()  # type: ignore[no-untyped-call]
from taskscheduler import logs, tracing  # noqa: E402
from taskscheduler.adapters import metrics  # noqa: E402 (after the folder is named)

app = make_celery_app(settings)
serve_queues(app, settings)
kinds = load_handler_modules(settings.handler_modules)

STORAGE_RETRY_DELAY_SECONDS = 1.0

_executor: TaskExecutor | None = None
_heartbeat: Heartbeat | None = None
# Read by the main process before its pool forks: the pool processes inherit them.
_celery_hostname = ""
_concurrency = 1


def _interrupt_handler() -> None:
    """Raises SoftTimeLimitExceeded in the running handler, through SIGUSR1 (_on_interrupt)."""
    os.kill(os.getpid(), signal.SIGUSR1)


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    """The pool process's SIGUSR1 (instead of billiard's, which raises whatever runs): raises
    only while the handler the watchdog means to stop still runs."""
    if _executor is not None and _executor.interrupt_wanted():
        raise SoftTimeLimitExceeded()


def _kill_process() -> None:
    """The handler ignored its interrupt: end this pool process; the lease reaper records it."""
    log.error("handler did not stop; killing pool process %d", os.getpid())
    os._exit(1)


INTERRUPTS = Interrupts(interrupt=_interrupt_handler, kill=_kill_process)


def process_name(pid: int) -> str:
    """A worker process's name, in its attempts and in the fleet."""
    return f"{socket.gethostname()}:{pid}"


def _build_executor() -> TaskExecutor:
    return TaskExecutor(
        PostgresAttemptStore.from_settings(settings),
        kinds,
        process_name(os.getpid()),
        settings.lease,
        INTERRUPTS,
        observer=AttemptObserver(),
        preparer=TaskPreparer(kinds, settings.default_retry_policy, settings.max_payload_bytes),
        served_queues=settings.worker_queues,
    )


class AttemptObserver(metrics.AttemptMetrics):
    """Counts the attempt, and names its kind on every log line about it."""

    def attempt_started(self, claimed: ClaimedAttempt) -> None:
        logs.bind(kind=claimed.kind)
        super().attempt_started(claimed)


@setup_logging.connect
def _configure_logging(**_: object) -> None:
    """Our handler instead of Celery's: its lines and ours in TASKSCHED_LOG_FORMAT."""
    logs.configure(settings.log_format, settings.log_level)


def _version() -> str:
    try:
        return importlib.metadata.version("taskscheduler-server")
    except importlib.metadata.PackageNotFoundError:
        return ""


def _start_heartbeat(concurrency: int, parent: str = "") -> None:
    """Registers this process in the fleet and keeps its heartbeat."""
    global _heartbeat
    registration = WorkerRegistration(
        name=process_name(os.getpid()),
        host=socket.gethostname(),
        pid=os.getpid(),
        celery_hostname=_celery_hostname,
        queues=tuple(settings.worker_queues),
        concurrency=concurrency,
        version=_version(),
        heartbeat_seconds=settings.worker_heartbeat_seconds,
        parent=parent,
    )
    _heartbeat = Heartbeat(PostgresWorkerRegistry(settings.libpq_url), registration)
    _heartbeat.start()


def _stop_heartbeat() -> None:
    if _heartbeat is not None:
        _heartbeat.stop()


@worker_init.connect
def _remember_worker(sender: Any, **_: object) -> None:
    global _celery_hostname, _concurrency
    _celery_hostname = str(sender.hostname)
    _concurrency = int(sender.concurrency or 1)


@worker_ready.connect
def _register_main_process(**_: object) -> None:
    """After the pool has forked: no thread or connection of it crosses a fork."""
    _start_heartbeat(_concurrency)


@worker_shutdown.connect
def _main_process_stopped(**_: object) -> None:
    _stop_heartbeat()


@worker_process_shutdown.connect
def _pool_process_stopped(**_: object) -> None:
    _stop_heartbeat()


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
    """Each pool process gets its own engine and span exporter: connections and threads must
    not cross a fork."""
    global _executor
    _executor = _build_executor()
    signal.signal(signal.SIGUSR1, _on_interrupt)
    tracing.configure("taskscheduler-worker")
    _start_heartbeat(1, parent=process_name(os.getppid()))


def executor() -> TaskExecutor:
    global _executor
    if _executor is None:
        _executor = _build_executor()
    return _executor


@app.task(name=EXECUTE_TASK, bind=True)
def execute(self: Task, task_id: str, attempt: int, then: list[list[Any]] | None = None) -> str:
    """Claims and runs one attempt of task_id, then of each task in `then` ([task id, attempt,
    traceparent]); the attempt numbers are for logs and tracing only."""
    first = Delivery(task_id, attempt, getattr(self.request, "traceparent", None) or "")
    # A released dependent runs on the spot only under no hard time limit: the message's covers
    # its own tasks, and the pool would kill a dependent run past it.
    run_released = (self.request.timelimit or (None, None))[0] is None
    backlog = Backlog(self, [Delivery(str(i), int(a), str(t)) for i, a, t in then or ()])
    if not then:  # nothing to hand back: no timer
        return _run_in_turn(first, backlog, run_released).value
    with backlog.handed_back_after(settings.message_time_budget_seconds):
        try:
            outcome = _run_in_turn(first, backlog, run_released)
        except Reject:
            raise  # the whole message comes again; the ids done by then are skipped
        except BaseException:
            backlog.hand_back()  # this delivery ends here: the ids after it go on elsewhere
            raise
    return outcome.value


class Backlog:
    """The ids a message carries after its first, run in order; those still waiting when the
    time budget runs out go back to the broker as a message of their own, so that no task waits
    long behind a slow one while another worker is free (and a warm shutdown ends soon)."""

    def __init__(self, task: Task, deliveries: list[Delivery]) -> None:
        # Read now: the request is the consuming thread's, and the hand-back runs on another.
        self._celery_queue = task.request.delivery_info["routing_key"]
        self._time_limit = (task.request.timelimit or (None, None))[0]
        self._waiting = deliveries
        self._lock = threading.Lock()
        self.taken: Delivery | None = None

    def take_next(self) -> uuid.UUID | None:
        """The id to run next, taken from the waiting ones (a hand-back no longer sends it) and
        kept in `taken`."""
        with self._lock:
            self.taken = self._waiting.pop(0) if self._waiting else None
        return None if self.taken is None else uuid.UUID(self.taken.task_id)

    def hand_back(self) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, []
        if not waiting:
            return
        try:
            send_execute(app, self._celery_queue, waiting, self._time_limit)
        except Exception:  # the dispatcher's repair loop publishes them again
            log.exception("handing back %d task ids failed", len(waiting))

    @contextlib.contextmanager
    def handed_back_after(self, seconds: float) -> Iterator[None]:
        timer = threading.Timer(seconds, self.hand_back)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()


def _run_in_turn(first: Delivery, backlog: Backlog, run_released: bool) -> Outcome:
    """Runs a message's tasks in order, each one's end and the claim of the one after it in one
    statement: one round trip and one commit a task, not two; then the dependents their
    successes released, claimed on the spot (see TaskExecutor.execute_then). Returns the
    first's outcome."""
    outcome, claimed = _run_one(first, backlog.take_next, run_released=run_released)
    while (delivery := _next_delivery(backlog, claimed)) is not None:
        _, claimed = _run_one(delivery, backlog.take_next, claimed, run_released)
    return outcome


def _next_delivery(backlog: Backlog, claimed: NextAttempt | None) -> Delivery | None:
    """The message's next task (its attempt in `claimed`, or None when it was not claimable),
    else the released dependent `claimed` holds."""
    if backlog.taken is not None:
        return backlog.taken
    if claimed is None or claimed.claimed is None:
        return None
    return Delivery(str(claimed.claimed.task_id), claimed.claimed.attempt, "")


def _run_one(
    delivery: Delivery,
    take_next: Callable[[], uuid.UUID | None] = no_next_task,
    claimed: NextAttempt | None = None,
    run_released: bool = False,
) -> tuple[Outcome, NextAttempt | None]:
    """Runs one delivery (its attempt claimed already when `claimed` holds it), claiming the
    task `take_next` names with its end, or a dependent it released."""
    task_id, attempt = delivery.task_id, delivery.attempt
    with (
        logs.bound(task_id=task_id, attempt=attempt),
        tracing.span(EXECUTE_TASK, delivery.traceparent or None, task_id=task_id, attempt=attempt),
    ):
        try:
            outcome, next_attempt = executor().execute_then(
                uuid.UUID(task_id), take_next, claimed, run_released
            )
        except StorageUnavailable:
            # Hand the message back rather than lose it; the database may be restarting. Its
            # ids already done are skipped when it comes again.
            log.warning("database unavailable; requeueing task %s", task_id)
            time.sleep(STORAGE_RETRY_DELAY_SECONDS)
            raise Reject("database unavailable", requeue=True) from None
        log.info("task %s attempt %s: %s", task_id, attempt, outcome.value)
    return outcome, next_attempt
