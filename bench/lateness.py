"""How late do run_at tasks start? Schedules N tasks due within a short window, then reports
the lateness of their promotion to PENDING (the dispatcher's timer) and of their start on a
worker (start_time - run_at): p50, p99 and max. Writes bench/results/lateness.json.

    python -m bench.lateness [--tasks 1000] [--window 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg

from taskscheduler.devstack.stack import Stack, on_free_ports
from taskscheduler.settings import with_driver
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

RESULTS = Path(__file__).parent / "results"
LEAD_SECONDS = 5.0  # time to accept every task before the first is due


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.50) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
        "mean_ms": round(statistics.fmean(values) * 1000, 1),
    }


async def schedule_all(address: str, token: str, count: int, window: float) -> datetime:
    first_due = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
    credentials = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = TaskServiceStub(channel)
        semaphore = asyncio.Semaphore(32)

        async def one(index: int) -> None:
            request = pb.ScheduleTaskRequest(kind="demo.echo")
            request.run_at.FromDatetime(first_due + timedelta(seconds=window * index / count))
            async with semaphore:
                await stub.ScheduleTask(request, timeout=30, metadata=credentials)

        await asyncio.gather(*(one(i) for i in range(count)))
    return first_due


def wait_for_all(database_url: str, count: int, deadline: float) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM tasks WHERE status = 'SUCCESS'").fetchone()
            if row is not None and row[0] >= count:
                return
            time.sleep(0.2)
    raise TimeoutError("not every task finished in time")


def start_lateness(database_url: str) -> list[float]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        starts = conn.execute(
            "SELECT extract(epoch FROM a.started_at - t.run_at) FROM tasks t "
            "JOIN task_attempts a ON a.task_id = t.id AND a.number = 1"
        ).fetchall()
    return [float(row[0]) for row in starts]


def listen_for_promotions(database_url: str, stop: float, sink: list[tuple[str, datetime]]) -> None:
    """Records when each task became PENDING, from the NOTIFY that commits with the change."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("LISTEN task_status")
        for notify in conn.notifies(timeout=max(0.1, stop - time.monotonic())):
            body = json.loads(notify.payload)
            if body["status"] == "PENDING":
                sink.append((body["id"], datetime.fromisoformat(body["time"])))
            if time.monotonic() > stop:
                return


def run(count: int, window: float, workers: int) -> dict[str, object]:
    data_dir = Path(tempfile.mkdtemp(prefix="taskscheduler-bench-"))
    config = on_free_ports(
        data_dir,
        worker_concurrency=workers,
        extra_env={"TASKSCHED_RATE_LIMIT_RPS": "0"},  # measure the timers, not the limiter
        log_stream=io.StringIO(),
    )
    stack = Stack(config)
    try:
        stack.start()
        database_url = with_driver(stack.database_url, "postgresql")
        promotions: list[tuple[str, datetime]] = []
        listener_stop = time.monotonic() + LEAD_SECONDS + window + 120
        listener = threading.Thread(
            target=listen_for_promotions,
            args=(database_url, listener_stop, promotions),
            daemon=True,
        )
        listener.start()
        accept_started = time.monotonic()
        address = f"127.0.0.1:{config.grpc_port}"
        asyncio.run(schedule_all(address, stack.token(), count, window))
        accept_seconds = time.monotonic() - accept_started
        wait_for_all(database_url, count, deadline=time.monotonic() + LEAD_SECONDS + window + 120)
        started = start_lateness(database_url)
        with psycopg.connect(database_url, autocommit=True) as conn:
            rows = conn.execute("SELECT id::text, run_at FROM tasks").fetchall()
        run_at: dict[str, datetime] = {str(row[0]): row[1] for row in rows}
        promotion_lateness = [
            (at - run_at[task_id]).total_seconds()
            for task_id, at in promotions
            if task_id in run_at
        ]
    finally:
        stack.stop()
    return {
        "tasks": count,
        "window_seconds": window,
        "worker_processes": workers,
        "accept_seconds": round(accept_seconds, 2),
        "promotion_lateness": summary(promotion_lateness),
        "start_lateness": summary(started),
        "run_id": uuid.uuid4().hex[:8],
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--window", type=float, default=2.0, help="seconds the due times span")
    parser.add_argument("--workers", type=int, default=2, help="worker pool processes")
    args = parser.parse_args()
    figures = run(args.tasks, args.window, args.workers)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lateness.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"{figures['tasks']} tasks due within {figures['window_seconds']} s, "
        f"{figures['worker_processes']} worker processes"
    )
    print(f"{'lateness':<34} {'p50':>9} {'p99':>9} {'max':>9}")
    for name, key in (
        ("promoted to PENDING - run_at", "promotion_lateness"),
        ("started on a worker - run_at", "start_lateness"),
    ):
        row = figures[key]
        assert isinstance(row, dict)
        print(f"{name:<34} {row['p50_ms']:>7} ms {row['p99_ms']:>6} ms {row['max_ms']:>6} ms")


if __name__ == "__main__":
    main()
