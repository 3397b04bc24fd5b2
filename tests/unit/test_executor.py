"""The worker's use case on the in-memory attempt store: outcomes, the attempt fence, lease
recovery, and the watchdog (renewal, cancel, timeout, escalation) on small real leases."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta

import pytest

from taskscheduler.core.execution import (
    CANCELLED_ERROR,
    TIMEOUT_ERROR,
    WORKER_LOST_ERROR,
    Interrupts,
    LeaseSettings,
    NextAttempt,
    Outcome,
    TaskExecutor,
)
from taskscheduler.core.model import JSON, NewTask, Task, TaskStatus
from taskscheduler.core.ports import AttemptEnd, ClaimedAttempt, Lease
from taskscheduler.core.recovery import recover_expired_leases
from taskscheduler.core.tasks import ScheduleRequest
from taskscheduler.testing import InMemoryAttemptStore, InMemoryServices
from tests.unit.memory import CALLER, Clock, Gate, services

S = TaskStatus
SHORT_LEASE = LeaseSettings(duration=timedelta(seconds=0.3), stop_grace=timedelta(seconds=0.2))
"""Renewed every 0.1 s; a handler told to stop is interrupted 0.2 s later, killed 0.2 s after."""
WAIT = 5.0  # the most any event of these tests may take to come


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def app(clock: Clock, gate: Gate) -> InMemoryServices:
    return services(clock, gate)


async def scheduled(app: InMemoryServices, kind: str, **fields: object) -> uuid.UUID:
    task = await app.tasks.schedule(CALLER, ScheduleRequest(kind=kind, **fields))  # type: ignore[arg-type]
    app.database.dispatch()
    return task.id


async def stored(app: InMemoryServices, task_id: uuid.UUID) -> Task:
    return await app.tasks.get(CALLER, str(task_id))


class Stops:
    """The transport's interrupts, recorded; a kill (or, with `interrupt_stops`, an interrupt)
    makes the waiting handler raise, as the signal or the end of the process would."""

    def __init__(self, gate: Gate, interrupt_stops: bool = False) -> None:
        self.calls: list[str] = []
        self._gate = gate
        self._interrupt_stops = interrupt_stops
        self.interrupts = Interrupts(self._interrupt, self._kill)

    def _interrupt(self) -> None:
        self.calls.append("interrupt")
        if self._interrupt_stops:
            self._gate.release.set()

    def _kill(self) -> None:
        self.calls.append("kill")
        self._gate.release.set()


class CountingStore(InMemoryAttemptStore):
    """Tells the test when the watchdog has renewed the lease twice."""

    def __init__(self, app: InMemoryServices) -> None:
        super().__init__(app.database)
        self.renewals = 0
        self.renewed_twice = threading.Event()

    def renew(self, task_id: uuid.UUID, attempt: int, lease: timedelta) -> Lease:
        held = super().renew(task_id, attempt, lease)
        self.renewals += 1
        if self.renewals >= 2:
            self.renewed_twice.set()
        return held


class CallsStore(InMemoryAttemptStore):
    """Records which of its methods the executor called, in order."""

    def __init__(self, app: InMemoryServices) -> None:
        super().__init__(app.database)
        self.calls: list[str] = []

    def claim(self, task_id: uuid.UUID, worker: str, lease: timedelta) -> ClaimedAttempt | None:
        self.calls.append("claim")
        return super().claim(task_id, worker, lease)

    def succeed(
        self, task_id: uuid.UUID, attempt: int, result: JSON, spawned: tuple[NewTask, ...] = ()
    ) -> bool:
        self.calls.append("succeed")
        return super().succeed(task_id, attempt, result, spawned)

    def end_and_claim(
        self, end: AttemptEnd, task_id: uuid.UUID, worker: str, lease: timedelta
    ) -> ClaimedAttempt | None:
        self.calls.append("end_and_claim")
        with self._db.lock:
            self.calls, recorded = [], self.calls  # the claim inside is not a call of its own
            claimed = super().end_and_claim(end, task_id, worker, lease)
            self.calls = recorded
        return claimed


def executor(app: InMemoryServices, stops: Stops | None = None) -> TaskExecutor:
    return app.executor("worker-1", SHORT_LEASE, stops.interrupts if stops else None)


async def test_a_handler_that_returns_succeeds_with_its_result(app: InMemoryServices) -> None:
    task_id = await scheduled(app, "test.ok")
    assert executor(app).execute(task_id) is Outcome.SUCCEEDED
    task = await stored(app, task_id)
    assert (task.status, task.result, task.attempt) == (S.SUCCESS, {"attempt": 1}, 1)
    assert [(a.number, a.status, a.worker) for a in task.attempts] == [(1, S.SUCCESS, "worker-1")]


async def test_a_failing_handler_is_retried_after_its_backoff_then_fails(
    app: InMemoryServices, clock: Clock
) -> None:
    task_id = await scheduled(app, "test.fail")
    run = executor(app)
    assert run.execute(task_id) is Outcome.RETRYING
    retrying = await stored(app, task_id)
    assert (retrying.status, retrying.run_at) == (S.RETRYING, clock.now + timedelta(seconds=1))
    assert app.database.dispatch() == []  # not due yet
    clock.advance(timedelta(seconds=1))
    assert app.run_ready(run) == [Outcome.RETRYING]
    clock.advance(timedelta(seconds=1))
    assert app.run_ready(run) == [Outcome.FAILED]
    task = await stored(app, task_id)
    assert (task.status, task.attempt) == (S.FAILED, 3)
    assert task.error == "builtins.ValueError: attempt 3 failed"
    assert [a.error_type for a in task.attempts] == ["builtins.ValueError"] * 3


async def test_a_non_retryable_error_fails_at_once(app: InMemoryServices) -> None:
    task_id = await scheduled(app, "test.fatal")
    assert executor(app).execute(task_id) is Outcome.FAILED
    assert (await stored(app, task_id)).attempt == 1


async def test_tasks_run_in_turn_record_each_end_with_the_next_claim(
    app: InMemoryServices,
) -> None:
    kinds = ("test.ok", "test.fatal", "test.ok")
    first, second, third = [await scheduled(app, kind) for kind in kinds]
    store = CallsStore(app)
    stops = Stops(Gate())
    run = TaskExecutor(store, app.kinds, "worker-1", SHORT_LEASE, stops.interrupts)
    outcome, claimed = run.execute_then(first, lambda: second)
    assert outcome is Outcome.SUCCEEDED
    assert claimed is not None and claimed.claimed is not None
    assert (claimed.claimed.task_id, claimed.claimed.attempt) == (second, 1)
    assert (await stored(app, second)).status is S.RUNNING
    outcome, claimed = run.execute_then(second, lambda: third, claimed)
    assert outcome is Outcome.FAILED
    outcome, last = run.execute_then(third, claimed=claimed)
    assert (outcome, last) == (Outcome.SUCCEEDED, None)
    assert store.calls == ["claim", "end_and_claim", "end_and_claim", "succeed"]
    statuses = [(await stored(app, task_id)).status for task_id in (first, second, third)]
    assert statuses == [S.SUCCESS, S.FAILED, S.SUCCESS]


async def test_a_skipped_delivery_still_claims_the_next(app: InMemoryServices) -> None:
    done, waiting = await scheduled(app, "test.ok"), await scheduled(app, "test.ok")
    run = executor(app)
    assert run.execute(done) is Outcome.SUCCEEDED
    outcome, claimed = run.execute_then(done, lambda: waiting)
    assert outcome is Outcome.SKIPPED
    assert claimed is not None and claimed.claimed is not None
    assert claimed.claimed.task_id == waiting
    assert run.execute_then(waiting, claimed=NextAttempt(None)) == (Outcome.SKIPPED, None)
    assert run.execute_then(waiting, claimed=claimed)[0] is Outcome.SUCCEEDED


async def test_a_second_delivery_and_a_task_not_let_through_are_skipped(
    app: InMemoryServices,
) -> None:
    task_id = await scheduled(app, "test.ok")
    run = executor(app)
    assert run.execute(task_id) is Outcome.SUCCEEDED
    assert run.execute(task_id) is Outcome.SKIPPED
    await app.queues.pause(CALLER, "default")
    held = await app.tasks.schedule(CALLER, ScheduleRequest(kind="test.ok"))
    assert app.database.dispatch() == []
    assert run.execute(held.id) is Outcome.SKIPPED
    assert (await stored(app, held.id)).status is S.PENDING


async def test_a_stale_attempts_completion_changes_nothing(
    app: InMemoryServices, clock: Clock
) -> None:
    task_id = await scheduled(app, "test.ok")
    first = app.attempts.claim(task_id, "lost-worker", timedelta(seconds=30))
    assert first is not None
    clock.advance(timedelta(seconds=31))
    assert recover_expired_leases(app.attempts, 10, clock) == 1
    recovered = await stored(app, task_id)
    assert recovered.status is S.RETRYING
    assert recovered.attempts[0].error_type == WORKER_LOST_ERROR
    assert not app.attempts.succeed(task_id, first.attempt, "late")
    assert await stored(app, task_id) == recovered
    clock.advance(timedelta(seconds=1))
    app.database.dispatch()
    second = app.attempts.claim(task_id, "worker-2", timedelta(seconds=30))
    assert second is not None and second.attempt == 2
    assert not app.attempts.succeed(task_id, first.attempt, "late")
    assert not app.attempts.renew(task_id, first.attempt, timedelta(seconds=30)).held
    assert app.attempts.succeed(task_id, second.attempt, "on time")
    assert (await stored(app, task_id)).result == "on time"


async def test_recovery_leaves_a_live_lease_alone_and_names_a_timeout(
    app: InMemoryServices, clock: Clock
) -> None:
    task_id = await scheduled(app, "test.ok", timeout=timedelta(seconds=10))
    assert app.attempts.claim(task_id, "w", timedelta(seconds=30)) is not None
    assert recover_expired_leases(app.attempts, 10, clock) == 0
    clock.advance(timedelta(seconds=31))
    assert recover_expired_leases(app.attempts, 10, clock) == 1
    assert (await stored(app, task_id)).attempts[0].error_type == TIMEOUT_ERROR


async def test_recovery_of_a_task_asked_to_stop_cancels_it(
    app: InMemoryServices, clock: Clock
) -> None:
    task_id = await scheduled(app, "test.ok")
    assert app.attempts.claim(task_id, "w", timedelta(seconds=30)) is not None
    await app.tasks.cancel(CALLER, str(task_id))
    clock.advance(timedelta(seconds=31))
    assert recover_expired_leases(app.attempts, 10, clock) == 1
    task = await stored(app, task_id)
    assert (task.status, task.attempts[0].error_type) == (S.CANCELLED, CANCELLED_ERROR)


async def test_the_watchdog_renews_the_lease_while_the_handler_runs(
    app: InMemoryServices, gate: Gate
) -> None:
    store = CountingStore(app)
    run = TaskExecutor(store, app.kinds, "w", SHORT_LEASE, Stops(gate).interrupts)
    task_id = await scheduled(app, "test.wait")
    running = asyncio.create_task(asyncio.to_thread(run.execute, task_id))
    assert await asyncio.to_thread(store.renewed_twice.wait, WAIT)
    gate.release.set()
    assert await asyncio.wait_for(running, WAIT) is Outcome.SUCCEEDED
    assert not run.interrupt_wanted()  # the handler has returned: a late signal stops nothing


async def test_a_cancel_reaches_the_handler_through_its_context(
    app: InMemoryServices, gate: Gate
) -> None:
    stops = Stops(gate)
    task_id = await scheduled(app, "test.wait")
    running = asyncio.create_task(asyncio.to_thread(executor(app, stops).execute, task_id))
    assert await asyncio.to_thread(gate.entered.wait, WAIT)
    await app.tasks.cancel(CALLER, str(task_id))
    assert await asyncio.wait_for(running, WAIT) is Outcome.CANCELLED
    task = await stored(app, task_id)
    assert (task.status, stops.calls) == (S.CANCELLED, [])  # it stopped by itself


async def test_a_handler_that_ignores_a_cancel_is_interrupted_then_killed(
    app: InMemoryServices, gate: Gate
) -> None:
    stops = Stops(gate)  # the handler ignores the interrupt: only the kill stops it
    task_id = await scheduled(app, "test.stubborn")
    running = asyncio.create_task(asyncio.to_thread(executor(app, stops).execute, task_id))
    assert await asyncio.to_thread(gate.entered.wait, WAIT)
    await app.tasks.cancel(CALLER, str(task_id))
    assert await asyncio.wait_for(running, WAIT) is Outcome.CANCELLED
    assert stops.calls == ["interrupt", "kill"]
    task = await stored(app, task_id)
    assert (task.status, task.attempts[0].error_type) == (S.CANCELLED, CANCELLED_ERROR)


async def test_an_attempt_past_its_timeout_is_interrupted_at_once(
    app: InMemoryServices, gate: Gate
) -> None:
    stops = Stops(gate, interrupt_stops=True)
    task_id = await scheduled(app, "test.stubborn", timeout=timedelta(seconds=0.2))
    outcome = await asyncio.wait_for(asyncio.to_thread(executor(app, stops).execute, task_id), WAIT)
    assert (outcome, stops.calls) == (Outcome.RETRYING, ["interrupt"])
    task = await stored(app, task_id)
    assert task.attempts[0].error_type == TIMEOUT_ERROR
    assert task.error == f"{TIMEOUT_ERROR}: the attempt exceeded its timeout of 0.2s"


async def test_a_lost_lease_stops_the_handler_and_its_failure_is_not_recorded(
    app: InMemoryServices, gate: Gate, clock: Clock
) -> None:
    task_id = await scheduled(app, "test.wait")
    running = asyncio.create_task(asyncio.to_thread(executor(app, Stops(gate)).execute, task_id))
    assert await asyncio.to_thread(gate.entered.wait, WAIT)
    with app.database.lock:  # no renewal in between: past the lease, a dispatcher recovers it
        clock.advance(timedelta(seconds=1))
        assert recover_expired_leases(app.attempts, 10, clock) == 1
    assert await asyncio.wait_for(running, WAIT) is Outcome.CANCELLED
    task = await stored(app, task_id)
    assert (task.status, task.attempts[0].error_type) == (S.RETRYING, WORKER_LOST_ERROR)
