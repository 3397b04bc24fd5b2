"""What the fault suites share: calls sent again through outages, a supervisor that restarts
the processes the suite killed (and reports the others), and counts read from the database."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import grpc
import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from taskscheduler.devstack.stack import Broker, Stack

T = TypeVar("T")
RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
RETRYABLE_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
UNFINISHED = """
SELECT (SELECT count(*) FROM tasks WHERE id = ANY(%s::uuid[])
        AND status NOT IN ('SUCCESS', 'FAILED', 'CANCELLED'))
     + (SELECT count(*) FROM workflows WHERE id = ANY(%s::uuid[]) AND status = 'RUNNING')
"""


@dataclass
class FaultReport:
    """What every fault run counts and must hold: each request answered, stored once and
    finished, no attempt run twice, every fault injected and no process exiting by itself."""

    fault_kinds: ClassVar[tuple[str, ...]] = ()
    broker: str = Broker.REDIS
    attempted: int = 0
    acknowledged: int = 0
    lost: int = 0  # acknowledged, not terminal
    tasks_stored: int = 0  # one per attempted request
    duplicated_executions: int = 0  # an attempt run twice
    faults: list[str] = field(default_factory=list)
    unexpected_exits: list[str] = field(default_factory=list)
    seconds: float = 0.0
    log: str = ""

    @property
    def missing_faults(self) -> list[str]:
        injected = " ".join(self.faults)
        return [fault for fault in self.fault_kinds if fault not in injected]

    @property
    def tasks_held(self) -> bool:
        return (
            self.acknowledged == self.attempted > 0
            and self.lost == 0
            and self.tasks_stored == self.attempted
            and self.duplicated_executions == 0
            and not self.missing_faults
            and not self.unexpected_exits
        )


async def until_answered(
    method: Callable[..., Awaitable[T]], request: Any, credentials: tuple[tuple[str, str], ...]
) -> T | None:
    """The call's answer, sent again through outages (with the request's idempotency key)
    for up to two minutes; None when none came."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            return await method(request, timeout=5, metadata=credentials)
        except grpc.aio.AioRpcError as error:
            if error.code() not in RETRYABLE_CODES:
                raise
            await asyncio.sleep(0.2)
    return None


class Supervisor:
    """Restarts a process of the stack that exited, as systemd or Kubernetes would. An exit
    the suite caused itself is announced first (`expect_exit`) and logged as a fault; any
    other (a process that gave up during an outage) is an unexpected exit, a failure. A held
    process stays down until released."""

    def __init__(self, stack: Stack, log_fault: Callable[[str], None]) -> None:
        self._stack = stack
        self._log_fault = log_fault
        self._expected: dict[str, int] = {}
        self.held: set[str] = set()
        self.unexpected_exits: list[str] = []
        self._thread: threading.Thread | None = None

    def expect_exit(self, name: str) -> None:
        self._expected[name] = self._expected.get(name, 0) + 1

    def forget_exit(self, name: str) -> None:
        """An announced exit that did not happen."""
        self._expected[name] -= 1

    def start(self, stopping: threading.Event) -> None:
        self._thread = threading.Thread(target=self._run, args=(stopping,), daemon=True)
        self._thread.start()

    def join(self) -> None:
        """Waits until the supervisor has seen `stopping`, so that it restarts nothing while
        the stack stops."""
        if self._thread is not None:
            self._thread.join(10)

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.wait(0.1):
            try:
                self._restart_exited()
            except Exception as exc:  # unsupervised, the run could not tell an exit: it fails
                self.unexpected_exits.append(f"the supervisor stopped: {exc!r}")
                return

    def _restart_exited(self) -> None:
        for process in self._stack.exited():
            if process.name in self.held:
                continue
            code = process.popen.returncode if process.popen else None
            text = f"{process.name} exited with code {code}; restarted"
            if self._expected.get(process.name, 0) > 0:
                self._expected[process.name] -= 1
                self._log_fault(text)
            else:
                self.unexpected_exits.append(text)
            self._stack.restart_process(process.name)


def unfinished(database_url: str, tasks: Iterable[str], workflows: Iterable[str] = ()) -> int:
    """The tasks and workflows not yet terminal; -1 while the database does not answer."""
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute(UNFINISHED, (list(tasks), list(workflows))).fetchone()
    except psycopg.OperationalError:
        return -1
    return int(row[0]) if row else -1


def wait_until_settled(count_unfinished: Callable[[], int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and count_unfinished() != 0:
        time.sleep(0.5)


def scraped(port: int, sample_name: str, method_suffix: str = "") -> float:
    """The sum of a sample's values on a process's /metrics (those whose `method` label ends
    with `method_suffix`, when given)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == sample_name and sample.labels.get("method", "").endswith(method_suffix)
    )


def scalar(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] | None = None) -> int:
    row = conn.execute(query, params).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def scalar_float(conn: psycopg.Connection[Any], query: str) -> float:
    row = conn.execute(query).fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0
