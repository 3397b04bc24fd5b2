"""The bare-Celery baseline: a Celery app with the service's worker settings (acks_late, prefetch
1, the same broker), a table of its own, and a task that does the two guarded UPDATEs a task
needs (start, finish) and nothing else. The benchmark runs its worker beside the stack's.

    celery -A bench.baseline worker --queues bench-baseline     (started by the benchmark)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import psycopg
from celery import Celery

from taskscheduler.adapters.broker import make_celery_app
from taskscheduler.settings import Settings, with_driver

QUEUE = "bench-baseline"
RUN_TASK = "bench.baseline.run"
TABLE = "bench_baseline"

settings = Settings(celery_queue=QUEUE)  # in the worker: the stack's environment
app = make_celery_app(settings)

_connection: psycopg.Connection[Any] | None = None


def connect(database_url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(with_driver(database_url, "postgresql"), autocommit=True)


def _worker_connection() -> psycopg.Connection[Any]:
    """One connection per pool process, opened after the fork."""
    global _connection
    if _connection is None:
        _connection = connect(settings.database_url)
    return _connection


@app.task(name=RUN_TASK)
def run(task_id: str) -> None:
    conn = _worker_connection()
    conn.execute(
        f"UPDATE {TABLE} SET status = 'RUNNING', started_at = clock_timestamp() "
        "WHERE id = %s AND status = 'PENDING'",
        (task_id,),
    )
    conn.execute(
        f"UPDATE {TABLE} SET status = 'SUCCESS', finished_at = clock_timestamp() "
        "WHERE id = %s AND status = 'RUNNING'",
        (task_id,),
    )


def create_table(database_url: str) -> None:
    with connect(database_url) as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            "id uuid PRIMARY KEY, kind text NOT NULL, payload jsonb NOT NULL, "
            "status text NOT NULL DEFAULT 'PENDING', "
            "created_at timestamptz NOT NULL DEFAULT now(), "
            "started_at timestamptz, finished_at timestamptz)"
        )
        conn.execute(f"TRUNCATE {TABLE}")


def client(redis_url: str) -> Celery:
    """The app a submitting script uses: the same configuration, its broker named."""
    return make_celery_app(Settings(redis_url=redis_url, celery_queue=QUEUE))


def submit(client_app: Celery, task_id: uuid.UUID, **options: Any) -> None:
    client_app.send_task(RUN_TASK, args=[str(task_id)], **options)


def start_worker(environment: dict[str, str], processes: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "celery", "-A", "bench.baseline", "worker",
        "--loglevel", "INFO", "--pool", "prefork", "--concurrency", str(processes),
        "--queues", QUEUE, "--hostname", "baseline@%h", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
