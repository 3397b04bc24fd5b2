"""End to end beside two PostgreSQL-native task queues: the service's no-op rate and, in the same
run, procrastinate's and pgqueuer's, each with its documented worker on a fresh database of its
own on the stack's PostgreSQL server.

Each peer's rate is its jobs over the time from the first bulk enqueue call to the last job
finished as the peer's own tables record it: procrastinate's `succeeded` events
(procrastinate_events.at), pgqueuer's `successful` log rows (pgqueuer_log.created), counted by
job id until every enqueued job has one.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    ExitStack,
    asynccontextmanager,
    contextmanager,
    suppress,
)
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pgqueuer
import psycopg
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries
from psycopg import sql

from bench import baseline, peer_tasks, throughput
from bench.common import Bench, Figure

TENANT = "bench-peers"
WARM_UP_TENANT = "bench-peers-warm-up"
WARM_UP_TASKS = 10
PROCRASTINATE_CONCURRENCY = 2
PGQUEUER_PROCESSES = 2
WORKER_NAME = "bench-peer-worker"  # each worker's application_name, with its index
START_TIMEOUT = 60.0  # s for the workers to connect and run a first job
FINISH_TIMEOUT = 300.0  # s for every job of a measurement to finish
POLL_INTERVAL = 0.25  # s between two counts: each one reads the jobs it counts

# Both take the job ids as %s and return (jobs finished, when the last one finished).
PROCRASTINATE_FINISHED = (
    "SELECT count(DISTINCT job_id), max(at) FROM procrastinate_events "
    "WHERE job_id = ANY(%s) AND type = 'succeeded'"
)
PGQUEUER_FINISHED = (
    "SELECT count(DISTINCT job_id), max(created) FROM pgqueuer_log "
    "WHERE job_id = ANY(%s) AND status = 'successful'"
)
WORKERS_CONNECTED = (
    "SELECT count(DISTINCT application_name) FROM pg_stat_activity "
    "WHERE datname = current_database() AND application_name LIKE %s"
)

Enqueue = Callable[[int], Awaitable[list[int]]]


@dataclass(frozen=True)
class Peer:
    """One peer as measured: its name and worker setup (for the table), its database, how its
    schema is applied and its jobs enqueued in bulk, its worker commands, and the query that
    counts its finished jobs."""

    name: str
    setup: str
    database: str
    install: Callable[[str], Coroutine[Any, Any, None]]
    client: Callable[[str], AbstractAsyncContextManager[Enqueue]]
    commands: tuple[tuple[str, ...], ...]
    finished: str
    counted: str  # how `finished` counts, for the figure's note


@dataclass
class Worker:
    command: Sequence[str]
    popen: subprocess.Popen[bytes]
    log: Path


def measure(bench: Bench) -> list[Figure]:
    tasks = 200 if bench.quick else 3000
    # A few tasks first, as each peer runs one job before it is timed: neither rate includes
    # its workers' first task.
    asyncio.run(throughput.service_throughput(bench, WARM_UP_TASKS, tenant=WARM_UP_TENANT))
    service_rate = asyncio.run(throughput.service_throughput(bench, tasks, tenant=TENANT))
    figures = []
    for peer in peers():
        rate = peer_throughput(bench, peer, tasks)
        figures.append(
            Figure(
                f"end to end vs {peer.name} ({peer.setup})",
                "tasks/s",
                service_rate,
                rate,
                peer.name,
                goal=1.0,
                note=peer.counted,
            )
        )
    return figures


def peers() -> list[Peer]:
    default_batch = inspect.signature(pgqueuer.run).parameters["batch_size"].default
    return [procrastinate_peer(), pgqueuer_peer(1), pgqueuer_peer(default_batch, ", its default")]


def procrastinate_peer() -> Peer:
    command = (
        sys.executable, "-m", "procrastinate", "--app", "bench.peer_tasks.app",
        "worker", "--concurrency", str(PROCRASTINATE_CONCURRENCY),
    )  # fmt: skip
    return Peer(
        name=f"procrastinate {version('procrastinate')}",
        setup=f"1 process, concurrency {PROCRASTINATE_CONCURRENCY}",
        database="bench_peer_procrastinate",
        install=procrastinate_install,
        client=procrastinate_client,
        commands=(command,),
        finished=PROCRASTINATE_FINISHED,
        counted="finished: job ids with a 'succeeded' row in procrastinate_events, last: max(at)",
    )


def pgqueuer_peer(batch_size: int, remark: str = "") -> Peer:
    command = (sys.executable, "-m", "bench.peer_tasks", "--batch-size", str(batch_size))
    return Peer(
        name=f"pgqueuer {version('pgqueuer')}",
        setup=f"{PGQUEUER_PROCESSES} processes, batch size {batch_size}{remark}",
        database=f"bench_peer_pgqueuer_batch{batch_size}",
        install=pgqueuer_install,
        client=pgqueuer_client,
        commands=(command,) * PGQUEUER_PROCESSES,
        finished=PGQUEUER_FINISHED,
        counted="finished: job ids with a 'successful' row in pgqueuer_log, last: max(created)",
    )


def peer_throughput(bench: Bench, peer: Peer, count: int) -> float:
    """Tasks per second of `peer`, from its first enqueue call to its last job finished, once
    its workers run a first job (their start is not the peer's throughput)."""
    with peer_database(bench, peer.database) as url:
        asyncio.run(peer.install(url))
        with running(peer.commands, bench, url) as workers:
            poll(url, WORKERS_CONNECTED, (f"{WORKER_NAME}-%",), len(workers), workers)
            _, warm_up = asyncio.run(enqueue(peer, url, 1))
            poll(url, peer.finished, (warm_up,), 1, workers)
            started, ids = asyncio.run(enqueue(peer, url, count))
            _, last = poll(url, peer.finished, (ids,), count, workers, FINISH_TIMEOUT)
    assert isinstance(last, datetime)
    return count / (last.timestamp() - started)


async def enqueue(peer: Peer, url: str, count: int) -> tuple[float, list[int]]:
    """Enqueues `count` no-op jobs in bulk calls of the service's batch size; returns the time
    of the first call and the job ids."""
    ids: list[int] = []
    async with peer.client(url) as enqueue_batch:
        started = time.time()
        for first in range(0, count, throughput.BATCH_SIZE):
            ids += await enqueue_batch(min(throughput.BATCH_SIZE, count - first))
    return started, ids


def poll(
    url: str,
    query: str,
    params: tuple[object, ...],
    target: int,
    workers: Sequence[Worker],
    timeout: float = START_TIMEOUT,
) -> tuple[Any, ...]:
    """Returns the row of `query` once its first column reaches `target`; fails as soon as a
    worker exits (it would never get there), TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(query, params).fetchone()
            if row is not None and row[0] >= target:
                return row
            for worker in workers:
                if worker.popen.poll() is not None:
                    raise RuntimeError(f"{worker.command} exited: {tail(worker.log)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{row and row[0]} of {target} in {timeout:g} s: {query}")
            time.sleep(POLL_INTERVAL)


@contextmanager
def peer_database(bench: Bench, name: str) -> Iterator[str]:
    """A new, empty database on the stack's server for one peer (one left by an interrupted run
    is dropped first); dropped on leaving. Yields its URL."""
    drop_database(bench, name)
    with psycopg.connect(bench.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(bench.database_url, name)
    finally:
        drop_database(bench, name)


def drop_database(bench: Bench, name: str) -> None:
    with psycopg.connect(bench.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def with_application_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), ("application_name", name)])
    return urlunsplit(parts._replace(query=query))


@contextmanager
def running(commands: Sequence[Sequence[str]], bench: Bench, url: str) -> Iterator[list[Worker]]:
    """Starts one worker per command on the peer's database, each under an application_name of
    its own (so that its connection shows it started); stops every one on leaving."""
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as logs, ExitStack() as stop:
        workers = []
        for index, command in enumerate(commands):
            name = f"{WORKER_NAME}-{index}"
            environment = bench.stack.environment() | {
                peer_tasks.DATABASE_URL_VARIABLE: with_application_name(url, name)
            }
            worker = start(command, environment, Path(logs) / f"{name}.log")
            stop.callback(stop_worker, worker)
            workers.append(worker)
        yield workers


def start(command: Sequence[str], environment: dict[str, str], log: Path) -> Worker:
    with log.open("wb") as output:  # the child keeps its own descriptor
        popen = subprocess.Popen(
            command, env=environment, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, so that a stop reaches its children
        )  # fmt: skip
    return Worker(command, popen, log)


def stop_worker(worker: Worker) -> None:
    """Stops the worker's whole group, even if the worker itself has exited early."""
    with suppress(ProcessLookupError):  # the group is gone: nothing left to stop
        baseline.stop_worker(worker.popen)


def tail(log: Path, size: int = 3000) -> str:
    return log.read_bytes()[-size:].decode(errors="replace")


async def procrastinate_install(url: str) -> None:
    app = peer_tasks.procrastinate_app(url)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


@asynccontextmanager
async def procrastinate_client(url: str) -> AsyncIterator[Enqueue]:
    app = peer_tasks.procrastinate_app(url)
    task = app.tasks[peer_tasks.TASK]

    async def enqueue_batch(size: int) -> list[int]:
        return await task.batch_defer_async(*({} for _ in range(size)))

    async with app.open_async():
        yield enqueue_batch


@asynccontextmanager
async def pgqueuer_queries(url: str) -> AsyncIterator[Queries]:
    connection = await asyncpg.connect(url)
    try:
        yield Queries(AsyncpgDriver(connection))
    finally:
        await connection.close()


async def pgqueuer_install(url: str) -> None:
    async with pgqueuer_queries(url) as queries:
        await queries.install()


@asynccontextmanager
async def pgqueuer_client(url: str) -> AsyncIterator[Enqueue]:
    async with pgqueuer_queries(url) as queries:

        async def enqueue_batch(size: int) -> list[int]:
            ids = await queries.enqueue([peer_tasks.TASK] * size, [None] * size, [0] * size)
            return [int(job_id) for job_id in ids]

        yield enqueue_batch
