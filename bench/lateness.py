"""How late do run_at tasks start? Schedules N tasks due within a short window, then reports
the lateness of their promotion to PENDING (the dispatcher's timer) and of their start on a
worker (start_time - run_at): p50, p99 and max. A section of `make bench`

    python -m bench --only lateness
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta

import psycopg

from bench.common import Bench, Figure, summary
from taskscheduler.v1 import task_service_pb2 as pb

TENANT = "bench-lateness"
LEAD_SECONDS = 5.0  # time to accept every task before the first is due
WINDOW_SECONDS = 2.0
BATCH_SIZE = 500


def measure(bench: Bench) -> list[Figure]:
    count = 100 if bench.quick else 1000
    promotions: list[tuple[str, datetime]] = []
    stop = threading.Event()
    listener = threading.Thread(
        target=listen_for_promotions, args=(bench.database_url, stop, promotions), daemon=True
    )
    listener.start()
    try:
        asyncio.run(schedule_all(bench, count, WINDOW_SECONDS))
        bench.wait_until_finished(TENANT, count, timeout=LEAD_SECONDS + WINDOW_SECONDS + 120)
    finally:
        stop.set()
        listener.join()
    with psycopg.connect(bench.database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT id::text, run_at FROM tasks WHERE tenant = %s", (TENANT,))
        run_at: dict[str, datetime] = {str(row[0]): row[1] for row in rows.fetchall()}
    promoted = summary(
        [(at - run_at[task_id]).total_seconds() for task_id, at in promotions if task_id in run_at]
    )
    started = summary(start_lateness(bench.database_url))
    processes = bench.stack.config.worker_concurrency
    name = f"run_at lateness, {count} tasks due within {WINDOW_SECONDS:g} s"
    return [
        *figures_of(f"{name}: promoted", promoted, goals={"p99": 100}),
        *figures_of(
            f"{name}: started",
            started,
            note=f"{processes} worker processes start the tasks as fast as they run them",
        ),
    ]


def figures_of(
    name: str, lateness: dict[str, float], goals: dict[str, float] | None = None, note: str = ""
) -> list[Figure]:
    """p50, p99 and max of one lateness, a line each."""
    goals = goals or {}
    return [
        Figure(
            f"{name}, {stat}",
            "ms",
            lateness[f"{stat}_ms"],
            goal=goals.get(stat),
            goal_is="value<=",
            note=note,
        )
        for stat in ("p50", "p99", "max")
    ]


async def schedule_all(bench: Bench, count: int, window: float) -> datetime:
    """Accepts every task in batches well before the first is due, so that the figure is the
    timer's alone, not the accept load's."""
    first_due = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
    requests = []
    for index in range(count):
        request = pb.ScheduleTaskRequest(kind="demo.echo")
        request.run_at.FromDatetime(first_due + timedelta(seconds=window * index / count))
        requests.append(request)
    async with bench.channel() as channel:
        stub = bench.stub(channel)
        for first in range(0, count, BATCH_SIZE):
            batch = pb.BatchScheduleTasksRequest(requests=requests[first : first + BATCH_SIZE])
            await stub.BatchScheduleTasks(batch, timeout=30, metadata=bench.metadata(TENANT))
    return first_due


def start_lateness(database_url: str) -> list[float]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        starts = conn.execute(
            "SELECT extract(epoch FROM a.started_at - t.run_at) FROM tasks t "
            "JOIN task_attempts a ON a.task_id = t.id AND a.number = 1 WHERE t.tenant = %s",
            (TENANT,),
        ).fetchall()
    return [float(row[0]) for row in starts]


def listen_for_promotions(
    database_url: str, stop: threading.Event, sink: list[tuple[str, datetime]]
) -> None:
    """Records when each task became PENDING, from the NOTIFY that commits with the change."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("LISTEN task_status")
        while not stop.is_set():
            for notify in conn.notifies(timeout=0.2):
                body = json.loads(notify.payload)
                if body["status"] == "PENDING":
                    sink.append((body["id"], datetime.fromisoformat(body["time"])))
