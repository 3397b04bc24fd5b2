"""End-to-end throughput and CPU per task by broker: two fresh stacks, one on Redis and one on
RabbitMQ (quorum queues, publisher confirms, an embedded node), each with a new database on the
bench's PostgreSQL server and the same worker processes, measured one after the other."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import costs
from bench.common import Bench, Figure
from bench.throughput import service_throughput
from taskscheduler.devstack.embedded import drop_database, new_database, rabbitmq_server
from taskscheduler.devstack.stack import Broker, Stack, on_free_ports

WARM_UP_TASKS = 50
SERVERS = {Broker.REDIS: "Redis", Broker.RABBITMQ: "RabbitMQ"}  # their names in costs


def measure(bench: Bench) -> list[Figure]:
    if rabbitmq_server() is None:
        print("-- brokers: no rabbitmq-server installed, skipped", file=sys.stderr)
        return []
    tasks = 200 if bench.quick else 3000
    rates: dict[Broker, float] = {}
    cpu_ms: dict[Broker, float] = {}
    server_ms: dict[Broker, float] = {}  # the broker's own server
    for broker in Broker:
        with stack_on(bench, broker) as other:
            asyncio.run(service_throughput(other, WARM_UP_TASKS, tenant="bench-warm-up"))
            with costs.measured(other, tasks) as spent:
                rates[broker] = asyncio.run(service_throughput(other, tasks, tenant="bench"))
            cpu_ms[broker] = spent.cpu_total_ms
            server_ms[broker] = spent.cpu_ms.get(SERVERS[broker], 0.0)
    processes = bench.stack.config.worker_concurrency
    figures = [
        Figure(
            f"end to end on RabbitMQ, no-op task, {processes} worker processes",
            "tasks/s",
            rates[Broker.RABBITMQ],
            rates[Broker.REDIS],
            "the same on Redis",
        ),
        Figure(
            "CPU per task on RabbitMQ, every process and the broker",
            "ms",
            cpu_ms[Broker.RABBITMQ],
            cpu_ms[Broker.REDIS],
            "the same on Redis",
        ),
    ]
    if round(server_ms[Broker.REDIS], 2) > 0:  # a zero (a quick run) is no figure, as in costs
        figures.append(
            Figure(
                "CPU per task of the broker's server, RabbitMQ",
                "ms",
                server_ms[Broker.RABBITMQ],
                server_ms[Broker.REDIS],
                "Redis's",
            )
        )
    return figures


@contextmanager
def stack_on(bench: Bench, broker: Broker) -> Iterator[Bench]:
    """A stack like the bench's, on `broker`, with a database of its own."""
    config = bench.stack.config
    database_url = new_database(bench.database_url, "bench")
    other = Stack(
        on_free_ports(
            Path(tempfile.mkdtemp(prefix=f"taskscheduler-bench-{broker}-")),
            worker_concurrency=config.worker_concurrency,
            database_url=database_url,
            redis_url=bench.redis_url,
            broker=broker,
            extra_env=config.extra_env | {"TASKSCHED_CELERY_QUEUE": f"bench-{broker}"},
            log_stream=config.log_stream,
        )
    )
    try:
        other.start()
        yield Bench(stack=other, quick=bench.quick)
    finally:
        other.stop()
        drop_database(bench.database_url, database_url)
