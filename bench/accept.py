"""Accept rates, each beside its baseline: ScheduleTask at 16 clients against a script doing
INSERT + apply_async, BatchScheduleTasks against Celery's bare publish rate, and REST through
the gateway against the same calls straight to gRPC."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import aiohttp
from psycopg.types.json import Jsonb

from bench import baseline
from bench.common import Bench, Figure, purge_queue
from taskscheduler.v1 import task_service_pb2 as pb

CLIENTS = 16
KIND = "demo.echo"
TENANT = "bench-accept"
BATCH_SIZE = 500


def measure(bench: Bench) -> list[Figure]:
    single = 200 if bench.quick else 3000
    batches = 2 if bench.quick else 20
    baseline.create_table(bench.database_url)
    with bench.workers_paused():
        grpc_rate = asyncio.run(grpc_accept_rate(bench, single))
        insert_publish_rate = insert_and_publish_rate(bench, single)
        rest_rate = asyncio.run(rest_accept_rate(bench, single))
        grpc_again = asyncio.run(grpc_accept_rate(bench, single))
        batch_rate = asyncio.run(batch_accept_rate(bench, batches))
        publish_rate = bare_publish_rate(bench, batches * BATCH_SIZE)
    return [
        Figure(
            f"durable accept: ScheduleTask, {CLIENTS} clients",
            "tasks/s",
            grpc_rate,
            insert_publish_rate,
            "INSERT + apply_async",
            goal=1.5,
        ),
        Figure(
            f"batch accept: BatchScheduleTasks of {BATCH_SIZE}",
            "tasks/s",
            batch_rate,
            publish_rate,
            "bare apply_async",
            goal=10.0,
        ),
        Figure(
            f"REST accept through the gateway, {CLIENTS} clients",
            "tasks/s",
            rest_rate,
            grpc_again,
            "same calls on gRPC",
            goal=0.8,
        ),
    ]


async def grpc_accept_rate(bench: Bench, count: int) -> float:
    metadata = bench.metadata(TENANT)
    async with bench.channel() as channel:
        stub = bench.stub(channel)
        await stub.ScheduleTask(pb.ScheduleTaskRequest(kind=KIND), metadata=metadata)  # warm up
        remaining = iter(range(count))

        async def client() -> None:
            for _ in remaining:
                request = pb.ScheduleTaskRequest(kind=KIND)
                await stub.ScheduleTask(request, metadata=metadata, timeout=30)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        return count / (time.perf_counter() - started)


async def rest_accept_rate(bench: Bench, count: int) -> float:
    """aiohttp, whose CPU per call is about grpcio's (0.3 ms against 0.2 ms here; httpx spends
    2 ms per call and was the bottleneck), so that the ratio measures the gateway."""
    headers = {"Authorization": bench.bearer(TENANT)}
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        base_url=bench.gateway_url, connector=connector, timeout=timeout, raise_for_status=True
    ) as http:
        body = {"kind": KIND, "payload": {}}

        async def post() -> None:
            async with http.post("/v1/tasks", json=body, headers=headers) as response:
                await response.read()

        await post()
        remaining = iter(range(count))

        async def client() -> None:
            for _ in remaining:
                await post()

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        return count / (time.perf_counter() - started)


async def batch_accept_rate(bench: Bench, batches: int) -> float:
    metadata = bench.metadata(TENANT)
    request = pb.BatchScheduleTasksRequest(
        requests=[pb.ScheduleTaskRequest(kind=KIND) for _ in range(BATCH_SIZE)]
    )
    async with bench.channel() as channel:
        stub = bench.stub(channel)
        started = time.perf_counter()
        for _ in range(batches):
            await stub.BatchScheduleTasks(request, metadata=metadata, timeout=60)
        return batches * BATCH_SIZE / (time.perf_counter() - started)


def insert_and_publish_rate(bench: Bench, count: int) -> float:
    """The baseline of a durable accept: a plain script that commits one row (synchronous
    commit, as the service) and then publishes with apply_async, from as many threads."""
    app = baseline.client(bench.redis_url)
    tickets = itertools.count()  # next() on it is atomic under the GIL

    def client() -> None:
        with baseline.connect(bench.database_url) as conn:
            while next(tickets) < count:
                task_id = uuid.uuid4()
                conn.execute(
                    f"INSERT INTO {baseline.TABLE} (id, kind, payload) VALUES (%s, %s, %s)",
                    (task_id, KIND, Jsonb({})),
                )
                baseline.submit(app, task_id)

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(client) for _ in range(CLIENTS)]:
            future.result()
    rate = count / (time.perf_counter() - started)
    purge_queue(bench.redis_url, baseline.QUEUE)
    return rate


def bare_publish_rate(bench: Bench, count: int) -> float:
    """Celery's own publish rate, no database: apply_async in a loop on one producer."""
    app = baseline.client(bench.redis_url)
    ids = [uuid.uuid4() for _ in range(count)]
    baseline.submit(app, ids[0])  # connect first
    started = time.perf_counter()
    for task_id in ids:
        baseline.submit(app, task_id)
    rate = count / (time.perf_counter() - started)
    purge_queue(bench.redis_url, baseline.QUEUE)
    return rate
