"""StreamStatus at N open streams: cancel-to-event latency, and the api's memory and connections."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import grpc
import psutil
import psycopg

from bench.common import Bench, Figure, percentile
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

TENANT = "bench-streams"
BATCH = 1000  # BatchScheduleTasks takes at most this many
CHANNELS = 4  # distinct HTTP/2 connections the streams are spread over
PAUSE_SECONDS = 0.05  # between two measured cancels
TIMEOUT_SECONDS = 30.0


@dataclass
class Stream:
    """One open StreamStatus: when its first message and its CANCELLED event arrived."""

    call: grpc.aio.UnaryStreamCall[pb.StreamStatusRequest, pb.StreamStatusResponse]
    first: asyncio.Future[float] = field(default_factory=asyncio.Future)
    cancelled: asyncio.Future[float] = field(default_factory=asyncio.Future)

    async def follow(self) -> None:
        try:
            async for message in self.call:
                now = time.perf_counter()
                if not self.first.done():
                    self.first.set_result(now)
                if message.status == task_pb2.TASK_STATUS_CANCELLED:
                    self.cancelled.set_result(now)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:  # not our own close
                for future in (self.first, self.cancelled):
                    if not future.done():
                        future.set_exception(error)


def serving_processes(pid: int) -> list[psutil.Process]:
    """The api's processes that serve calls: the one process, or the children of the parent
    that runs several (TASKSCHED_API_PROCESSES)."""
    parent = psutil.Process(pid)
    return parent.children() or [parent]


def rss_mib(pid: int) -> float:
    """The RSS of one serving api process, the mean when there are several."""
    processes = serving_processes(pid)
    return sum(float(p.memory_info().rss) for p in processes) / len(processes) / 2**20


async def api_connections(bench: Bench, pid: int) -> tuple[int, int]:
    """The api's connections to PostgreSQL as pg_stat_activity sees them (matched by the api's
    client ports), and how many of those are LISTENing."""
    port = urlsplit(bench.database_url).port
    ports = [
        c.laddr.port
        for process in serving_processes(pid)
        for c in process.net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port
    ]
    async with await psycopg.AsyncConnection.connect(bench.database_url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE query ILIKE 'LISTEN%%') "
            "FROM pg_stat_activity WHERE client_port = ANY(%s)",
            (ports,),
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def schedule(
    stub: TaskServiceStub, metadata: tuple[tuple[str, str], ...], n: int
) -> list[str]:
    run_at = datetime.now(UTC) + timedelta(hours=1)  # they stay SCHEDULED
    ids: list[str] = []
    for start in range(0, n, BATCH):
        requests = [pb.ScheduleTaskRequest(kind="demo.echo") for _ in range(min(BATCH, n - start))]
        for request in requests:
            request.run_at.FromDatetime(run_at)
        response = await stub.BatchScheduleTasks(
            pb.BatchScheduleTasksRequest(requests=requests),
            metadata=metadata,
            timeout=TIMEOUT_SECONDS,
        )
        ids.extend(task.id for task in response.tasks)
    return ids


async def cancel_all(
    stub: TaskServiceStub, metadata: tuple[tuple[str, str], ...], ids: list[str]
) -> None:
    semaphore = asyncio.Semaphore(32)

    async def cancel(task_id: str) -> None:
        async with semaphore:
            request = pb.CancelTaskRequest(task_id=task_id)
            await stub.CancelTask(request, metadata=metadata, timeout=TIMEOUT_SECONDS)

    await asyncio.gather(*(cancel(task_id) for task_id in ids))


async def run(bench: Bench, stubs: list[TaskServiceStub]) -> list[Figure]:
    n, m = (100, 20) if bench.quick else (1000, 200)
    metadata = bench.metadata(TENANT)
    pid = bench.stack.pid_of("api")
    ids = await schedule(stubs[0], metadata, n)
    rss_before = rss_mib(pid)
    processes = len(serving_processes(pid))
    connections_before, _ = await api_connections(bench, pid)

    opened = time.perf_counter()
    streams = {
        task_id: Stream(
            stubs[i % CHANNELS].StreamStatus(
                pb.StreamStatusRequest(task_id=task_id), metadata=metadata
            )
        )
        for i, task_id in enumerate(ids)
    }
    followers = [asyncio.create_task(stream.follow()) for stream in streams.values()]
    first = await asyncio.wait_for(
        asyncio.gather(*(s.first for s in streams.values())), TIMEOUT_SECONDS
    )
    open_seconds = max(first) - opened
    rss_open = rss_mib(pid)
    connections_open, listening = await api_connections(bench, pid)

    async def cancel(task_id: str) -> tuple[float, float]:
        """Seconds from sending CancelTask to its response, and to the CANCELLED event."""
        started = time.perf_counter()
        request = pb.CancelTaskRequest(task_id=task_id)
        await stubs[0].CancelTask(request, metadata=metadata, timeout=TIMEOUT_SECONDS)
        response = time.perf_counter()
        event = await asyncio.wait_for(streams[task_id].cancelled, TIMEOUT_SECONDS)
        return response - started, event - started

    await cancel(ids[1])  # warm-up, unmeasured: the api's first cancel compiles its statements
    rpcs: list[float] = []
    latencies: list[float] = []
    for task_id in ids[:: n // m][:m]:  # never ids[1]: n // m >= 5
        rpc, latency = await cancel(task_id)
        rpcs.append(rpc)
        latencies.append(latency)
        await asyncio.sleep(PAUSE_SECONDS)

    for stream in streams.values():
        stream.call.cancel()
    await asyncio.gather(*followers, return_exceptions=True)  # closed: CancelledError
    remaining = [task_id for task_id, s in streams.items() if not s.cancelled.done()]
    await cancel_all(stubs[0], metadata, remaining)

    p50, p99, worst = (1000 * percentile(latencies, q) for q in (0.5, 0.99, 1.0))
    bound = (
        f"{m} cancels one at a time after a warm-up, {n:,} streams open on {CHANNELS} "
        "connections; timed from just before CancelTask to the CANCELLED event, so an upper "
        "bound on commit→event (it includes the RPC and the commit); the CancelTask response: "
        f"p50 {1000 * percentile(rpcs, 0.5):.1f} ms, p99 {1000 * percentile(rpcs, 0.99):.1f} ms"
    )
    return [
        Figure(
            f"StreamStatus commit→event p99 at {n:,} open streams",
            "ms",
            p99,
            goal=50,
            goal_is="value<=",
            note=f"p50 {p50:.1f} ms, max {worst:.1f} ms; {bound}",
        ),
        Figure(
            f"StreamStatus commit→event p50 at {n:,} open streams",
            "ms",
            p50,
            note=bound,
        ),
        Figure(
            f"api RSS at {n:,} open streams, per api process",
            "MB",
            rss_open,
            baseline=rss_before,
            baseline_name="idle api",
            goal=200,
            goal_is="value<=",
            note=(
                f"MiB; {1024 * (rss_open - rss_before) * processes / n:.1f} KiB a stream over "
                f"{processes} api process(es); all {n:,} first "
                f"messages within {open_seconds:.2f} s; the api's PostgreSQL connections: "
                f"{connections_before} before, {connections_open} with the streams open "
                f"({listening} LISTEN; the rest its SQLAlchemy pool)"
            ),
        ),
    ]


async def on_channels(bench: Bench) -> list[Figure]:
    """Runs on distinct HTTP/2 connections (a local subchannel pool each); closing them on the
    way out ends any stream still open."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [
        grpc.aio.insecure_channel(bench.grpc_address, options=options) for _ in range(CHANNELS)
    ]
    try:
        return await run(bench, [bench.stub(channel) for channel in channels])
    finally:
        for channel in channels:
            await channel.close()


def measure(bench: Bench) -> list[Figure]:
    return asyncio.run(on_channels(bench))
