"""Scale: the hot calls and queries on a table of 1M finished tasks and 1M attempts vs empty."""

from __future__ import annotations

import asyncio
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
from google.protobuf.struct_pb2 import Struct

from bench.common import Bench, Figure, percentile
from taskscheduler.adapters.postgres.attempt_store import PostgresAttemptStore
from taskscheduler.adapters.postgres.due_tasks import PostgresDueTasks
from taskscheduler.adapters.postgres.engine import make_async_engine
from taskscheduler.core.model import PageCursor, TaskFilter
from taskscheduler.core.paging import encode_page_token
from taskscheduler.settings import Settings
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb

TENANT = "bench-scale"
KIND = "demo.echo"
LIVE_TASKS = 100
WARMUP_CALLS = 20
CHUNK = 100_000

# Finished history, half of it in TENANT: one task created every 100 ms (1M: over the last 28
# hours, well inside the retention), one attempt each. The NOTIFY and foreign-key triggers are
# off in this session only (session_replication_role): that history was announced long ago.
FILL = """
WITH history AS (
    INSERT INTO tasks (id, tenant, status, kind, payload, attempt, max_attempts,
        initial_backoff_seconds, max_backoff_seconds, backoff_multiplier, jitter, run_at,
        created_at, updated_at, started_at, finished_at, result, error, worker)
    SELECT gen_random_uuid(),
        CASE WHEN mod(n, 2) = 0 THEN %(tenant)s ELSE 'tenant-' || mod(n, 19) END,
        s.status, (ARRAY['demo.echo', 'demo.sleep', 'demo.fail', 'report.build',
                         'email.send'])[1 + mod(n / 2, 5)],
        jsonb_build_object('n', n), 1, 3, 1, 300, 2, true, c.at, c.at,
        c.at + interval '2 s', c.at + interval '1 s', c.at + interval '2 s',
        CASE WHEN s.status = 'SUCCESS' THEN jsonb_build_object('n', n) END,
        CASE WHEN s.status = 'FAILED' THEN 'demo.Error: boom' END, 'bench-fill:1'
    FROM generate_series(%(first)s::int, %(last)s::int) AS n,
        LATERAL (SELECT (ARRAY['SUCCESS', 'SUCCESS', 'SUCCESS', 'FAILED', 'CANCELLED'])
                        [1 + mod(n, 5)] AS status) AS s,
        LATERAL (SELECT now() - (n + 20) * interval '100 ms' AS at) AS c
    RETURNING id, status, started_at, finished_at
)
INSERT INTO task_attempts (task_id, number, status, worker, started_at, finished_at,
    error_type, error_message, traceback)
SELECT id, 1, status, 'bench-fill:1', started_at, finished_at,
    CASE WHEN status = 'FAILED' THEN 'demo.Error' END,
    CASE WHEN status = 'FAILED' THEN 'boom' END,
    CASE WHEN status = 'FAILED' THEN 'Traceback (most recent call last): ...' END
FROM history
"""


@dataclass(frozen=True)
class Size:
    rows: int  # finished tasks, and as many attempts
    rounds: int
    calls: int  # per operation and round


QUICK = Size(rows=20_000, rounds=3, calls=10)
FULL = Size(rows=1_000_000, rounds=6, calls=25)
# Whether each phase has the history: alternating, so that both kinds of phase see the machine's
# slow spells alike (on 2 cores, whole phases can run 10-30% apart whatever the table holds).
PHASES = (False, True, False, True, False)

Calls = Callable[[int], Awaitable[list[float]]]  # runs n sequential calls, returns latencies


class Operations:
    """Each measured operation, as the service's clients, worker and dispatcher perform it."""

    def __init__(
        self, bench: Bench, channel: grpc.aio.Channel, sql: psycopg.Connection[Any]
    ) -> None:
        settings = Settings.model_validate({"DATABASE_URL": bench.stack.database_url})
        self.stub = bench.stub(channel)
        self.metadata = bench.metadata(TENANT)
        self.sql = sql
        self.store = PostgresAttemptStore.from_settings(settings)
        self.lease = settings.lease.duration
        self.worker = f"{socket.gethostname()}:bench-scale"
        self.async_engine = make_async_engine(settings)
        self.due_tasks = PostgresDueTasks.from_settings(self.async_engine, settings)
        self.batch_size = settings.dispatcher_batch_size
        self.live: list[str] = []
        self.scheduled: list[str] = []
        self.deep_token = ""
        self.next_token = ""

    def all(self) -> dict[str, Calls]:
        return {
            "GetTask": self.get_task,
            "ListTasks by status": self.list_by_status,
            "ListTasks by kind": self.list_by_kind,
            "ListTasks deep page": self.list_deep,
            "ScheduleTask": self.schedule,
            "claim": self.claim,
            "dispatcher due scan": self.due_scan,
        }

    async def timed(self, n: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
        latencies = []
        for index in range(n):
            started = time.perf_counter()
            await call(index)
            latencies.append(time.perf_counter() - started)
        return latencies

    async def schedule(self, n: int) -> list[float]:
        """Tasks due in a day: no worker runs them, and claim() makes them PENDING itself."""

        async def one(index: int) -> None:
            payload = Struct()
            payload.update({"n": index})
            request = pb.ScheduleTaskRequest(kind=KIND, payload=payload)
            request.run_at.FromDatetime(datetime.now(UTC) + timedelta(days=1))
            response = await self.stub.ScheduleTask(request, metadata=self.metadata, timeout=30)
            self.scheduled.append(response.task.id)

        return await self.timed(n, one)

    async def get_task(self, n: int) -> list[float]:
        async def one(index: int) -> None:
            task_id = self.live[index % len(self.live)]
            request = pb.GetTaskRequest(task_id=task_id)
            await self.stub.GetTask(request, metadata=self.metadata, timeout=30)

        return await self.timed(n, one)

    async def list_tasks(self, n: int, **fields: Any) -> list[float]:
        async def one(index: int) -> None:
            request = pb.ListTasksRequest(page_size=50, **fields)
            response = await self.stub.ListTasks(request, metadata=self.metadata, timeout=30)
            assert len(response.tasks) > 0, fields

        return await self.timed(n, one)

    async def list_by_status(self, n: int) -> list[float]:
        return await self.list_tasks(n, statuses=[task_pb2.TASK_STATUS_SCHEDULED])

    async def list_by_kind(self, n: int) -> list[float]:
        return await self.list_tasks(n, kind=KIND)

    async def list_deep(self, n: int) -> list[float]:
        """Follows next_page_token from halfway down the tenant's list (back there at its end)."""

        async def one(index: int) -> None:
            request = pb.ListTasksRequest(page_size=50, page_token=self.next_token)
            response = await self.stub.ListTasks(request, metadata=self.metadata, timeout=30)
            assert len(response.tasks) > 0
            self.next_token = response.next_page_token or self.deep_token

        return await self.timed(n, one)

    async def claim(self, n: int) -> list[float]:
        """The worker's claim (PostgresAttemptStore.claim, as TaskExecutor calls it) of tasks
        made PENDING and dispatched here by SQL, so no broker message ever wakes a worker for
        them; each then succeeds, untimed, as the worker would record it. republish_at is an
        hour away so the dispatcher does not publish them either."""
        ids = [uuid.UUID(task_id) for task_id in self.scheduled[-n:]]
        del self.scheduled[-n:]
        assert len(ids) == n, "claim needs the tasks scheduled in the same round"
        self.sql.execute(
            "UPDATE tasks SET status = 'PENDING', run_at = now(), dispatched_at = now(),"
            " republish_at = now() + interval '1 hour' WHERE id = ANY(%s)",
            (ids,),
        )
        latencies = []
        for task_id in ids:
            started = time.perf_counter()
            claimed = self.store.claim(task_id, self.worker, self.lease)
            latencies.append(time.perf_counter() - started)
            assert claimed is not None, task_id
            finished = self.store.succeed(task_id, claimed.attempt, {"bench": True})
            assert finished, task_id
        return latencies

    async def due_scan(self, n: int) -> list[float]:
        """One idle turn of the dispatcher's loop: promote what is due (nothing is), then find
        the next due time."""

        async def one(index: int) -> None:
            promoted = await self.due_tasks.promote_due(self.batch_size)
            await self.due_tasks.next_times()
            assert promoted == 0, promoted

        return await self.timed(n, one)

    async def prepare(self) -> None:
        """Fresh statistics, a checkpoint, and the deep-page token: before measuring."""
        for table in ("tasks", "task_attempts"):
            self.sql.execute(f"VACUUM ANALYZE {table}")
        self.sql.execute("CHECKPOINT")
        count = self.sql.execute("SELECT count(*) FROM tasks WHERE tenant = %s", (TENANT,))
        row = count.fetchone()
        assert row is not None
        middle = self.sql.execute(
            "SELECT created_at, id FROM tasks WHERE tenant = %s"
            " ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
            (TENANT, row[0] // 2),
        ).fetchone()
        assert middle is not None
        self.deep_token = encode_page_token(PageCursor(middle[0], middle[1]), TaskFilter())
        self.next_token = self.deep_token


Samples = dict[str, tuple[list[float], list[float]]]  # per operation: round rates, latencies


async def measure_phase(ops: Operations, size: Size, rows: int, samples: Samples) -> float:
    """From a clean table: the working set, `rows` of history, a warm-up round, then rounds of
    sequential calls of every operation in turn. Returns the fill time."""
    ops.sql.execute("TRUNCATE tasks, task_attempts, task_dependencies, workflows")
    ops.scheduled.clear()
    await ops.schedule(LIVE_TASKS)
    ops.live, ops.scheduled = ops.scheduled, []
    fill_seconds = fill(ops.sql, rows)
    await ops.prepare()
    for round_number in range(size.rounds + 1):
        for name, run in ops.all().items():
            taken = await run(WARMUP_CALLS if round_number == 0 else size.calls)
            if round_number > 0:
                rates, latencies = samples.setdefault(name, ([], []))
                rates.append(len(taken) / sum(taken))
                latencies.extend(taken)
    return fill_seconds


def fill(sql: psycopg.Connection[Any], rows: int) -> float:
    if not rows:
        return 0.0
    started = time.monotonic()
    sql.execute("SET session_replication_role = replica")
    for first in range(1, rows + 1, CHUNK):
        last = min(rows, first + CHUNK - 1)
        sql.execute(FILL, {"tenant": TENANT, "first": first, "last": last})
    sql.execute("RESET session_replication_role")
    return time.monotonic() - started


def label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


async def run(bench: Bench, size: Size) -> list[Figure]:
    empty: Samples = {}
    full: Samples = {}
    fill_times: list[float] = []
    with psycopg.connect(bench.database_url, autocommit=True) as sql:
        async with bench.channel() as channel:
            ops = Operations(bench, channel, sql)
            try:
                for filled in PHASES:
                    samples = full if filled else empty
                    history = size.rows if filled else 0
                    fill_times.append(await measure_phase(ops, size, history, samples))
            finally:
                ops.store.close()
                await ops.async_engine.dispose()
        sql.execute(
            "UPDATE tasks SET status = 'CANCELLED', finished_at = now(), updated_at = now()"
            " WHERE status IN ('SCHEDULED', 'PENDING', 'RETRYING')"
        )
    rows = size.rows
    fills = " and ".join(f"{seconds:.1f} s" for seconds in fill_times if seconds)
    print(f"-- scale: filled {rows:,} tasks and attempts in {fills}", file=sys.stderr)
    figures = []
    for name, (rates, latencies) in full.items():
        empty_rates, empty_latencies = empty[name]
        figures.append(
            Figure(
                name=f"{name} at {label(rows)} rows vs empty",
                unit="calls/s",
                service=statistics.median(rates),
                baseline=statistics.median(empty_rates),
                baseline_name="empty table",
                goal=0.8,
                goal_is="ratio>=",
                note=(
                    f"p50 {percentile(latencies, 0.5) * 1000:.2f} ms at {rows:,} finished tasks"
                    f" + {rows:,} attempts vs {percentile(empty_latencies, 0.5) * 1000:.2f} ms"
                    f" empty; median rate of {len(rates)} rounds vs {len(empty_rates)} (phases"
                    f" alternating) of {size.calls} sequential calls; fills took {fills}"
                ),
            )
        )
    return figures


def measure(bench: Bench) -> list[Figure]:
    return asyncio.run(run(bench, QUICK if bench.quick else FULL))
