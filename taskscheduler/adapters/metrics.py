"""The Prometheus metrics every process exports: one place for their names and labels, the
observers that feed them, and the HTTP endpoint that serves them."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from taskscheduler.adapters.postgres.gauges import PostgresGauges
from taskscheduler.core.errors import StorageUnavailable
from taskscheduler.core.execution import Outcome
from taskscheduler.core.model import HeldBackBy, Task
from taskscheduler.core.ports import ClaimedAttempt

log = logging.getLogger("taskscheduler.metrics")

# Seconds: a no-op task waits milliseconds, a backlog minutes.
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

TASKS_SCHEDULED = Counter("taskscheduler_tasks_scheduled", "Tasks stored", ["kind"])
TASKS_CANCELLED = Counter(
    "taskscheduler_tasks_cancelled", "Waiting tasks cancelled by the api", ["kind"]
)
ATTEMPTS_STARTED = Counter("taskscheduler_attempts_started", "Attempts claimed", ["kind"])
ATTEMPTS_FINISHED = Counter(
    "taskscheduler_attempts_finished",
    "Attempts ended: succeeded, retrying, failed (for good) or cancelled",
    ["kind", "outcome"],
)
QUEUE_WAIT = Histogram(
    "taskscheduler_queue_wait_seconds",
    "From when a task was due (accepted, or its run_at) to the start of its attempt",
    ["kind"],
    buckets=WAIT_BUCKETS,
)
RUN_DURATION = Histogram(
    "taskscheduler_run_duration_seconds", "How long handlers ran", ["kind"], buckets=WAIT_BUCKETS
)
GRPC_REQUESTS = Counter("taskscheduler_grpc_requests", "gRPC calls handled", ["method", "code"])
GRPC_LATENCY = Histogram(
    "taskscheduler_grpc_request_seconds",
    "gRPC call durations (a stream: until it ends)",
    ["method"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_DISPATCHED = Counter(
    "taskscheduler_queue_dispatched", "Tasks let through to the broker", ["tenant", "queue"]
)
QUEUE_THROTTLED = Counter(
    "taskscheduler_queue_throttled",
    "Dispatch passes that left a queue's ready tasks waiting, by the limit that held them",
    ["tenant", "queue", "limit"],
)
RETENTION_DELETED = Counter(
    "taskscheduler_retention_deleted", "Finished tasks deleted past their retention"
)
RETENTION_SECONDS = Histogram(
    "taskscheduler_retention_delete_seconds", "Time of each pass's delete of expired tasks"
)
HTTP_REQUESTS = Counter(
    "taskscheduler_http_requests", "REST requests handled", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "taskscheduler_http_request_seconds",
    "REST request durations",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)


class TaskMetrics:
    """Implements core.ports.TaskObserver (the api's use cases)."""

    def scheduled(self, task: Task) -> None:
        TASKS_SCHEDULED.labels(task.kind).inc()

    def cancelled(self, task: Task) -> None:
        TASKS_CANCELLED.labels(task.kind).inc()


class AttemptMetrics:
    """Implements core.execution.ExecutionObserver (the worker's attempts)."""

    def attempt_started(self, claimed: ClaimedAttempt) -> None:
        ATTEMPTS_STARTED.labels(claimed.kind).inc()
        QUEUE_WAIT.labels(claimed.kind).observe(max(0.0, claimed.waited.total_seconds()))

    def attempt_finished(self, claimed: ClaimedAttempt, outcome: Outcome, seconds: float) -> None:
        ATTEMPTS_FINISHED.labels(claimed.kind, outcome.value).inc()
        RUN_DURATION.labels(claimed.kind).observe(seconds)


def observe_dispatch(
    tenant: str, queue: str, dispatched: int, held_back_by: HeldBackBy | None
) -> None:
    if dispatched:
        QUEUE_DISPATCHED.labels(tenant, queue).inc(dispatched)
    if held_back_by is not None:
        QUEUE_THROTTLED.labels(tenant, queue, held_back_by.value).inc()


def observe_retention(deleted: int, seconds: float) -> None:
    RETENTION_DELETED.inc(deleted)
    RETENTION_SECONDS.observe(seconds)


def observe_let_through(tenant: str, queue: str, count: int) -> None:
    """Tasks the api let through as it stored them (no dispatcher pass)."""
    QUEUE_DISPATCHED.labels(tenant, queue).inc(count)


class TasksByStatus(Collector):
    """`taskscheduler_tasks{status}`: the live tasks by status, read from PostgreSQL at each
    scrape; finished tasks are counted by the counters instead."""

    def __init__(self, gauges: PostgresGauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("taskscheduler_tasks", "Live tasks by status", labels=["status"])
        try:
            counts = self._gauges.live_tasks()
        except StorageUnavailable as exc:  # a scrape must answer even with no database
            log.warning("tasks by status not read: %s", exc)
            return
        for status, count in counts.items():
            gauge.add_metric([status.value], count)
        yield gauge


class QueueDepths(Collector):
    """`taskscheduler_queue_depth{tenant,queue,state}`: the tasks waiting in each queue (due or
    not), with the queue's state, so that the tasks held by a pause show as such; and
    `taskscheduler_queue_running{tenant,queue}`."""

    def __init__(self, gauges: PostgresGauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "taskscheduler_queue_depth",
            "Tasks waiting in a queue, with its state (PAUSED: held by a pause)",
            labels=["tenant", "queue", "state"],
        )
        running = GaugeMetricFamily(
            "taskscheduler_queue_running", "Tasks of a queue running", labels=["tenant", "queue"]
        )
        try:
            queues = self._gauges.queue_depths()
        except StorageUnavailable as exc:  # a scrape must answer even with no database
            log.warning("queue depths not read: %s", exc)
            return
        for queue in queues:
            depth.add_metric([queue.tenant, queue.queue, queue.state], queue.waiting)
            running.add_metric([queue.tenant, queue.queue], queue.running)
        yield depth
        yield running


class WorkersByState(Collector):
    """`taskscheduler_workers{state}`: the worker processes ONLINE, LOST and STOPPED, read from
    PostgreSQL at each scrape."""

    def __init__(self, gauges: PostgresGauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "taskscheduler_workers", "Worker processes by state", labels=["state"]
        )
        try:
            counts = self._gauges.workers_by_state()
        except StorageUnavailable as exc:  # a scrape must answer even with no database
            log.warning("workers by state not read: %s", exc)
            return
        for state, count in counts.items():
            gauge.add_metric([state.value], count)
        yield gauge


def serve(host: str, port: int, registry: CollectorRegistry | None = None) -> bool:
    """Serves /metrics on its own port, in a thread; False when the port is 0 (off) or taken
    (metrics are not worth failing a process for: the log says why)."""
    if not port:
        return False
    try:
        if registry is None:
            start_http_server(port, addr=host)
        else:
            start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.warning("metrics not served on %s:%d: %s", host, port, exc)
        return False
    log.info("metrics on http://%s:%d/metrics", host, port)
    return True


def observe_grpc(method: str, code: str, started: float) -> None:
    GRPC_REQUESTS.labels(method, code).inc()
    GRPC_LATENCY.labels(method).observe(time.perf_counter() - started)


def observe_http(method: str, route: str, status: int, started: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)
