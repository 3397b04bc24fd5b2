"""What the unit tests on in-memory stores share: a clock to drive, callers, kinds to run."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from taskscheduler.core.kinds import KindRegistry, NonRetryableError, PayloadModel, TaskContext
from taskscheduler.core.model import JSON, Caller, RetryPolicy
from taskscheduler.testing import InMemoryDatabase, InMemoryServices

CALLER = Caller("tenant-a", frozenset({"tasks:read", "tasks:write"}))
OTHER_TENANT = Caller("tenant-b", frozenset({"tasks:read", "tasks:write"}))
NO_BACKOFF = RetryPolicy(
    max_attempts=3,
    initial_backoff=timedelta(seconds=1),
    max_backoff=timedelta(seconds=1),
    backoff_multiplier=1.0,
    jitter=False,
)


class Clock:
    """The database's now(), moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


class Empty(PayloadModel):
    pass


class Gate:
    """Lets a test hold a handler where it wants and know when it got there."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()


def make_kinds(gate: Gate | None = None) -> KindRegistry:
    """`test.ok` returns its payload; `test.progress` reports its progress 1,000 times in a
    tight loop; `test.fail` raises; `test.fatal` raises a non-retryable
    error; `test.wait` waits for the gate's release or a cancel (raising TaskCancelled);
    `test.stubborn` ignores cancels and waits for the gate's release, then raises."""
    kinds = KindRegistry()
    held = gate or Gate()

    @kinds.register("test.ok", payload=Empty)
    def ok(payload: Empty, context: TaskContext) -> JSON:
        return {"attempt": context.attempt}

    @kinds.register("test.progress", payload=Empty)
    def progress(payload: Empty, context: TaskContext) -> JSON:
        for done in range(1, 1001):  # a tight loop: throttled to a few writes
            context.report_progress(done, 1000, f"item {done}")
        return None

    @kinds.register("test.fail", payload=Empty)
    def fail(payload: Empty, context: TaskContext) -> JSON:
        raise ValueError(f"attempt {context.attempt} failed")

    @kinds.register("test.fatal", payload=Empty)
    def fatal(payload: Empty, context: TaskContext) -> JSON:
        raise NonRetryableError("cannot help")

    @kinds.register("test.wait", payload=Empty)
    def wait(payload: Empty, context: TaskContext) -> JSON:
        held.entered.set()
        while not held.release.wait(0.01):
            context.raise_if_cancelled()
        return "released"

    @kinds.register("test.stubborn", payload=Empty)
    def stubborn(payload: Empty, context: TaskContext) -> JSON:
        held.entered.set()
        if not held.release.wait(30):
            raise TimeoutError("never stopped")
        raise RuntimeError("stopped from outside")  # as the transport's interrupt or kill would

    return kinds


def services(clock: Clock, gate: Gate | None = None) -> InMemoryServices:
    return InMemoryServices.create(
        make_kinds(gate), NO_BACKOFF, InMemoryDatabase(clock, timedelta(hours=1))
    )
