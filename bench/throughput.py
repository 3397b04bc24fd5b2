"""End-to-end throughput (accept to SUCCESS of a no-op task) and accept-to-start latency at low
load, each beside bare Celery with the same worker settings and a task doing the same two
guarded UPDATEs."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime

from celery import Celery
from psycopg.types.json import Jsonb

from bench import baseline, costs
from bench.common import Bench, Figure, percentile
from taskscheduler.v1 import task_service_pb2 as pb

KIND = "demo.echo"
E2E_TENANT = "bench-e2e"
LATENCY_TENANT = "bench-latency"
BATCH_SIZE = 500
LOW_LOAD_INTERVAL = 0.05  # seconds between two submissions: 20 tasks/s


def measure(bench: Bench) -> list[Figure]:
    tasks = 200 if bench.quick else 3000
    probes = 20 if bench.quick else 200
    processes = bench.stack.config.worker_concurrency
    baseline.create_table(bench.database_url)
    with costs.measured(bench, tasks) as spent:
        service_rate = asyncio.run(service_throughput(bench, tasks))
    service_latencies = asyncio.run(service_start_latencies(bench, probes))
    worker = baseline.start_worker(bench.stack.environment(), processes)
    try:
        app = baseline.client(bench.redis_url)
        warm_up(bench, app)
        baseline_rate = baseline_throughput(bench, app, tasks)
        baseline_latencies = baseline_start_latencies(bench, app, probes)
    finally:
        baseline.stop_worker(worker)
    figures = [
        Figure(
            f"end to end, no-op task, {processes} worker processes",
            "tasks/s",
            service_rate,
            baseline_rate,
            "bare Celery, 2 UPDATEs",
            goal=1.0,
        )
    ]
    for name, fraction, goal in (("p50", 0.5, 2.0), ("p99", 0.99, 2.0)):
        figures.append(
            Figure(
                f"accept to RUNNING at {1 / LOW_LOAD_INTERVAL:g} tasks/s, {name}",
                "ms",
                percentile(service_latencies, fraction) * 1000,
                percentile(baseline_latencies, fraction) * 1000,
                "bare Celery submit to start",
                goal=goal,
                goal_is="ratio<=",
            )
        )
    figures += spent.figures("end to end")
    return figures


async def service_throughput(bench: Bench, count: int, tenant: str = E2E_TENANT) -> float:
    """Accepts `count` tasks in batches and returns tasks per second from the first call to
    the last SUCCESS. `tenant` keeps the tasks of each section that calls it apart."""
    metadata = bench.metadata(tenant)
    started = time.time()
    async with bench.channel() as channel:
        stub = bench.stub(channel)
        for first in range(0, count, BATCH_SIZE):
            size = min(BATCH_SIZE, count - first)
            request = pb.BatchScheduleTasksRequest(
                requests=[pb.ScheduleTaskRequest(kind=KIND) for _ in range(size)]
            )
            await stub.BatchScheduleTasks(request, metadata=metadata, timeout=60)
    bench.wait_until_finished(tenant, count)
    last = _scalar_time(bench, "SELECT max(finished_at) FROM tasks WHERE tenant = %s", (tenant,))
    return count / (last.timestamp() - started)


async def service_start_latencies(bench: Bench, count: int) -> list[float]:
    """Submits one task every LOW_LOAD_INTERVAL and returns, for each, the seconds from the
    call to the start of its first attempt."""
    metadata = bench.metadata(LATENCY_TENANT)
    submitted: dict[str, float] = {}
    async with bench.channel() as channel:
        stub = bench.stub(channel)
        for _ in range(count):
            at = time.time()
            reply = await stub.ScheduleTask(
                pb.ScheduleTaskRequest(kind=KIND), metadata=metadata, timeout=30
            )
            submitted[reply.task.id] = at
            await asyncio.sleep(LOW_LOAD_INTERVAL)
    bench.wait_until_finished(LATENCY_TENANT, count)
    with baseline.connect(bench.database_url) as conn:
        rows = conn.execute(
            "SELECT t.id::text, a.started_at FROM tasks t "
            "JOIN task_attempts a ON a.task_id = t.id AND a.number = 1 WHERE t.tenant = %s",
            (LATENCY_TENANT,),
        ).fetchall()
    return [started.timestamp() - submitted[task_id] for task_id, started in rows]


def warm_up(bench: Bench, app: Celery) -> None:
    """Waits until the baseline worker consumes: one task through it."""
    [task_id] = _insert_rows(bench, 1)
    baseline.submit(app, task_id)
    _wait_for_baseline(bench, {task_id})


def baseline_throughput(bench: Bench, app: Celery, count: int) -> float:
    ids = _insert_rows(bench, count)
    started = time.time()
    with app.producer_or_acquire() as producer:
        for task_id in ids:
            baseline.submit(app, task_id, producer=producer)
    _wait_for_baseline(bench, set(ids))
    last = _scalar_time(bench, f"SELECT max(finished_at) FROM {baseline.TABLE}", ())
    return count / (last.timestamp() - started)


def baseline_start_latencies(bench: Bench, app: Celery, count: int) -> list[float]:
    ids = _insert_rows(bench, count)
    submitted: dict[uuid.UUID, float] = {}
    for task_id in ids:
        submitted[task_id] = time.time()
        baseline.submit(app, task_id)
        time.sleep(LOW_LOAD_INTERVAL)
    _wait_for_baseline(bench, set(ids))
    with baseline.connect(bench.database_url) as conn:
        rows = conn.execute(
            f"SELECT id, started_at FROM {baseline.TABLE} WHERE id = ANY(%s)", (ids,)
        ).fetchall()
    return [started.timestamp() - submitted[task_id] for task_id, started in rows]


def _insert_rows(bench: Bench, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    with baseline.connect(bench.database_url) as conn, conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {baseline.TABLE} (id, kind, payload) VALUES (%s, %s, %s)",
            [(task_id, KIND, Jsonb({})) for task_id in ids],
        )
    return ids


def _wait_for_baseline(bench: Bench, ids: set[uuid.UUID]) -> None:
    bench.wait_for_count(
        f"SELECT count(*) FROM {baseline.TABLE} WHERE id = ANY(%s) AND status = 'SUCCESS'",
        (list(ids),),
        len(ids),
    )


def _scalar_time(bench: Bench, query: str, params: tuple[object, ...]) -> datetime:
    with baseline.connect(bench.database_url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None and isinstance(row[0], datetime)
    return row[0]
