"""What every benchmark section shares: the running stack it measures, and the figures it
reports (the service's value, the baseline's from the same run, and their ratio)."""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import grpc
import psycopg

from taskscheduler.adapters.broker import make_celery_app
from taskscheduler.devstack.stack import Stack
from taskscheduler.settings import Settings, with_driver
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub


@dataclass(frozen=True)
class Figure:
    """One line of the table. The ratio is always service / baseline; `target` says which way
    is better: a rate wants a ratio at least `goal`, a latency a ratio (or value) at most it."""

    name: str
    unit: str
    service: float
    baseline: float | None = None
    baseline_name: str = ""
    goal: float | None = None
    goal_is: Literal["ratio>=", "ratio<=", "value<="] = "ratio>="
    note: str = ""
    section: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.service / self.baseline

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        if self.goal_is == "value<=":
            return self.service <= self.goal
        if self.ratio is None:
            return None
        if self.goal_is == "ratio>=":
            return self.ratio >= self.goal
        return self.ratio <= self.goal

    @property
    def target(self) -> str:
        if self.goal is None:
            return ""
        if self.goal_is == "value<=":
            return f"<= {self.goal:g} {self.unit}"
        return f"{self.goal_is.removeprefix('ratio')} {self.goal:g}x"

    def as_json(self) -> dict[str, object]:
        ratio = self.ratio
        return {
            "section": self.section,
            "name": self.name,
            "unit": self.unit,
            "service": round(self.service, 2),
            "baseline": None if self.baseline is None else round(self.baseline, 2),
            "baseline_name": self.baseline_name,
            "ratio": None if ratio is None else round(ratio, 3),
            "target": self.target,
            "met": self.met,
            "note": self.note,
        }


@dataclass
class Bench:
    """The stack under measurement and how to reach it. `quick` asks each section for a smoke
    run: the same code paths on small counts, in seconds."""

    stack: Stack
    quick: bool

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.stack.config.grpc_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.config.gateway_port}"

    @property
    def database_url(self) -> str:
        """A plain libpq URL for psycopg."""
        return with_driver(self.stack.database_url, "postgresql")

    @property
    def redis_url(self) -> str:
        return self.stack.redis_url

    def bearer(self, tenant: str) -> str:
        """An authorization value for `tenant`: each section uses a tenant of its own so that
        its tasks can be counted apart."""
        return f"Bearer {self.stack.token(tenant)}"

    def metadata(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", self.bearer(tenant)),)

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.grpc_address)

    @staticmethod
    def stub(channel: grpc.aio.Channel) -> TaskServiceStub:
        return TaskServiceStub(channel)

    @contextmanager
    def workers_paused(self) -> Iterator[None]:
        """Stops the stack's workers (SIGSTOP) while an accept path is measured, as the
        baseline's script has no consumer either; on leaving, the tasks accepted meanwhile are
        cancelled, their messages purged, and the workers continue."""
        group = self.stack.pid_of("worker")
        os.killpg(group, signal.SIGSTOP)
        try:
            yield
        finally:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                conn.execute(
                    "UPDATE tasks SET status = 'CANCELLED', finished_at = now() "
                    "WHERE status = 'PENDING'"
                )
            purge_queue(self.redis_url, Settings().celery_queue)
            os.killpg(group, signal.SIGCONT)

    def wait_until_finished(self, tenant: str, count: int, timeout: float = 300) -> None:
        """Returns once `count` tasks of `tenant` are in a terminal status."""
        self.wait_for_count(
            "SELECT count(*) FROM tasks WHERE tenant = %s AND finished_at IS NOT NULL",
            (tenant,),
            count,
            timeout,
        )

    def wait_for_count(
        self, query: str, params: tuple[object, ...], count: int, timeout: float = 300
    ) -> None:
        """Returns once `query` (a count) reaches `count`; TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while True:
                row = conn.execute(query, params).fetchone()
                if row is not None and row[0] >= count:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{row} of {count} in time: {query} {params}")
                time.sleep(0.25)  # each look reads the tasks counted: not too often


def purge_queue(redis_url: str, queue: str) -> None:
    """Deletes every message waiting in a Celery queue."""
    app = make_celery_app(Settings(redis_url=redis_url, celery_queue=queue))
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50, p99, max and mean of durations in seconds, in milliseconds."""
    return {
        "p50_ms": round(percentile(values, 0.50) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
        "mean_ms": round(statistics.fmean(values) * 1000, 1),
    }
