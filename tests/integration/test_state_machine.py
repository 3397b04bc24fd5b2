"""A property-based stateful test of the task life cycle against the real PostgreSQL store.

Rules: schedule (PENDING and dispatched at once, PENDING held back, SCHEDULED due, SCHEDULED an
hour later), schedule a task depending on one or two others (BLOCKED, released or cancelled by
their ends in the same transaction), promote due timers, dispatch, deliver, deliver one message
twice, deliver a stale message, crash a worker, expire leases, repair lost messages, complete,
fail, retry (a RETRYING task's backoff elapses: promoted, dispatched, claimed again, maybe with
a late report of the attempt before), a late completion of an ended attempt, and cancel (RUNNING
tasks too). The rules that act on one task draw it from the tasks they apply to (preconditions),
so claims, outcomes and faults happen in most examples instead of waiting for a lucky order.

Each rule predicts its effect in a model (status, attempt rows, dispatched, lease, cancel
request) and checks it. After every step the store is compared with the model, and each change
since the last observation must be one legal transition (core.states.can_transition, strictly:
a rule that moves a task twice observes in between), terminal statuses never change, and the
attempt only grows, one attempt row per attempt. The teardown stops the faults and drives every
task to a terminal status. The test then asserts that every kind of event happened at least
once across the examples: a rule no example reaches fails the test instead of passing silently.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from taskscheduler.adapters.postgres.attempt_store import PostgresAttemptStore
from taskscheduler.adapters.postgres.due_tasks import PostgresDueTasks
from taskscheduler.adapters.postgres.engine import make_async_engine
from taskscheduler.adapters.postgres.task_repository import PostgresTaskRepository
from taskscheduler.core.execution import CANCELLED_ERROR, WORKER_LOST_ERROR
from taskscheduler.core.model import NewTask, RetryPolicy, TaskStatus
from taskscheduler.core.ports import AttemptError
from taskscheduler.core.recovery import recover_expired_leases
from taskscheduler.core.states import can_transition
from taskscheduler.settings import Settings

S = TaskStatus
T = TypeVar("T")
TENANT = "t"
LEASE = timedelta(seconds=30)
# Long enough never to elapse during a run: only the retry rule (and the teardown) lets a
# backoff or a later timer elapse, so which timers are due is known to the model.
LONG = timedelta(hours=1)
ERROR = AttemptError("builtins.RuntimeError", "boom")
ERROR_TYPE = ERROR.type

# Every kind of event the machine must reach across the examples (asserted after the run).
EVENTS = (
    "claims",
    "double deliveries",
    "stale deliveries refused",
    "successes",
    "failures",
    "retries",
    "lost workers recovered",
    "late completions refused",
    "late completions of a running task refused",
    "running cancels",
    "cancels honoured at the end of an attempt",
    "lost messages republished",
    "timers promoted",
    "dependents scheduled blocked",
    "dependents released",
    "dependents cancelled by a dependency's end",
)

Row = tuple[str, str | None]  # an attempt row: its status, its error type


@dataclass
class Expected:
    """What the model says one task's row and attempt rows must be."""

    status: S
    max_attempts: int
    due: bool = False  # a SCHEDULED or RETRYING task whose run_at has come
    dispatched: bool = False
    lease_lost: bool = False  # RUNNING, but its worker crashed and the lease has expired
    cancel_requested: bool = False
    attempts: list[Row] = field(default_factory=list)
    depends_on: tuple[uuid.UUID, ...] = ()

    @property
    def attempt(self) -> int:
        return len(self.attempts)

    @property
    def ended_attempts(self) -> int:
        """Attempts 1..n are over: every attempt but a RUNNING task's last one."""
        return self.attempt - 1 if self.running else self.attempt

    @property
    def timer_due(self) -> bool:
        return self.due and self.status in (S.SCHEDULED, S.RETRYING)

    @property
    def claimable(self) -> bool:
        return self.status is S.PENDING and self.dispatched

    @property
    def running(self) -> bool:
        return self.status is S.RUNNING

    def end_attempt(self, status: S, error_type: str | None) -> None:
        """The current attempt ends: the task takes `status`; its attempt row is SUCCESS or
        CANCELLED with the task, else FAILED (the task may be RETRYING)."""
        recorded = status if status in (S.SUCCESS, S.CANCELLED) else S.FAILED
        self.attempts[-1] = (recorded.value, error_type)
        self.status = status
        self.lease_lost = False


@dataclass(frozen=True)
class Observed:
    status: S
    attempt: int
    dispatched: bool
    cancel_requested: bool
    lease_lost: bool
    attempts: tuple[tuple[int, str, str | None], ...]  # number, status, error type


@dataclass
class Store:
    """The adapters under test, shared by every example (one engine, one event loop)."""

    loop: asyncio.AbstractEventLoop
    repository: PostgresTaskRepository
    due: PostgresDueTasks
    attempts: PostgresAttemptStore
    sql: psycopg.Connection[tuple[Any, ...]]

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)


@contextmanager
def opened_store(app_settings: Settings) -> Iterator[Store]:
    loop = asyncio.new_event_loop()
    engine = make_async_engine(app_settings)
    attempts = PostgresAttemptStore.from_settings(app_settings)
    sql = psycopg.connect(app_settings.libpq_url, autocommit=True)
    try:
        yield Store(
            loop,
            PostgresTaskRepository.from_settings(engine, app_settings),
            PostgresDueTasks.from_settings(engine, app_settings),
            attempts,
            sql,
        )
    finally:
        sql.close()
        loop.run_until_complete(engine.dispose())
        attempts.close()
        loop.close()


def some(predicate: Callable[[Expected], bool]) -> Callable[[Any], bool]:
    """A precondition: the rule applies to at least one task."""
    return lambda machine: any(predicate(task) for task in machine.expected.values())


def make_machine(store: Store, events: Counter[str]) -> type[RuleBasedStateMachine]:
    def step(function: Callable[..., None]) -> Callable[..., None]:
        """A rule, counted. The store is out of step with the model until the invariant has
        compared them: a failed step is then reported as it is, not masked by the teardown."""

        @functools.wraps(function)
        def marked(machine: Any, **arguments: Any) -> None:
            machine.in_sync = False
            events[f"rule {function.__name__}"] += 1
            function(machine, **arguments)

        return marked

    class TaskLifeCycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            store.sql.execute("TRUNCATE tasks CASCADE")
            self.expected: dict[uuid.UUID, Expected] = {}
            self.observed: dict[uuid.UUID, Observed] = {}
            self.in_sync = True

        def pick(self, data: st.DataObject, predicate: Callable[[Expected], bool]) -> uuid.UUID:
            # In creation order, not by id: uuid4 differs between runs, the order does not.
            candidates = [key for key, task in self.expected.items() if predicate(task)]
            return data.draw(st.sampled_from(candidates), label="task")

        def row(self, task_id: uuid.UUID) -> tuple[Any, ...]:
            """The task's whole row and its attempt rows, to show that a refused write left
            them as they were."""
            task = store.sql.execute("SELECT * FROM tasks WHERE id = %s", (task_id,)).fetchone()
            attempts = store.sql.execute(
                "SELECT * FROM task_attempts WHERE task_id = %s ORDER BY number", (task_id,)
            ).fetchall()
            return task, attempts

        # -- rules -------------------------------------------------------------------------

        @rule(when=st.sampled_from(["now", "held", "due", "later"]), max_attempts=st.integers(1, 4))
        @step
        def schedule(self, when: str, max_attempts: int) -> None:
            """A task due now is let through its queue at once ("now": the dispatcher was
            quick) or not yet ("held"); a timer is due already or an hour later."""
            run_at = datetime.now(UTC) + (LONG if when == "later" else -timedelta(seconds=1))
            new = NewTask(
                id=uuid.uuid4(),
                tenant=TENANT,
                kind="demo.echo",
                payload={},
                status=S.PENDING if when in ("now", "held") else S.SCHEDULED,
                retry_policy=RetryPolicy(
                    max_attempts=max_attempts, initial_backoff=LONG, max_backoff=LONG, jitter=False
                ),
                timeout=None,
                run_at=run_at,
            )
            task, created = store.run(store.repository.insert(new))
            assert created and task.status is new.status and task.attempt == 0
            self.expected[new.id] = Expected(new.status, max_attempts, due=when == "due")
            if when == "now":
                self._dispatch_ready()

        @precondition(some(lambda task: True))
        @rule(data=st.data(), count=st.integers(1, 2))
        @step
        def schedule_dependent(self, data: st.DataObject, count: int) -> None:
            """A task that depends on one or two others, whatever they stand at: BLOCKED on
            those not yet succeeded, CANCELLED at once when one failed or was cancelled."""
            parents = tuple(dict.fromkeys(self.pick(data, lambda task: True) for _ in range(count)))
            new = NewTask(
                id=uuid.uuid4(),
                tenant=TENANT,
                kind="demo.echo",
                payload={},
                status=S.PENDING,
                retry_policy=RetryPolicy(
                    max_attempts=2, initial_backoff=LONG, max_backoff=LONG, jitter=False
                ),
                timeout=None,
                run_at=datetime.now(UTC) - timedelta(seconds=1),
                depends_on=parents,
                blocked_on=len(parents),
            )
            task, created = store.run(store.repository.insert(new))
            expected = Expected(S.BLOCKED, 2, depends_on=parents)
            self.expected[new.id] = expected
            self._settle_blocked()
            assert created and task.status is expected.status
            if expected.status is S.BLOCKED:
                events["dependents scheduled blocked"] += 1

        # The rules without a task to draw are only taken when they have work: hypothesis
        # favours rules without arguments, and no-op passes would crowd out the rest.
        @precondition(some(lambda task: task.timer_due))
        @rule()
        @step
        def dispatch_due_timers(self) -> None:
            events["timers promoted"] += self._promote_due()

        @precondition(some(lambda task: task.status is S.PENDING and not task.dispatched))
        @rule()
        @step
        def dispatch_ready(self) -> None:
            self._dispatch_ready()

        @precondition(some(lambda task: task.claimable))
        @rule(data=st.data())
        @step
        def deliver(self, data: st.DataObject) -> None:
            self._claim(self.pick(data, lambda task: task.claimable))
            events["claims"] += 1

        @precondition(some(lambda task: task.claimable))
        @rule(data=st.data())
        @step
        def deliver_twice(self, data: st.DataObject) -> None:
            """The broker delivers one message to two workers: exactly one claims the task."""
            task_id = self.pick(data, lambda task: task.claimable)
            self._claim(task_id, "worker-a")
            assert store.attempts.claim(task_id, "worker-b", LEASE) is None
            events["double deliveries"] += 1

        @precondition(some(lambda task: not task.claimable))
        @rule(data=st.data())
        @step
        def deliver_a_stale_message(self, data: st.DataObject) -> None:
            """A message for a task that is not PENDING and dispatched (running, waiting for a
            timer, held back by its queue, or finished) claims nothing and changes nothing."""
            task_id = self.pick(data, lambda task: not task.claimable)
            before = self.row(task_id)
            assert store.attempts.claim(task_id, "worker-late", LEASE) is None
            assert self.row(task_id) == before
            events["stale deliveries refused"] += 1

        @precondition(some(lambda task: task.running))
        @rule(data=st.data())
        @step
        def complete(self, data: st.DataObject) -> None:
            task_id = self.pick(data, lambda task: task.running)
            self._succeed(task_id)
            events["successes"] += 1

        @precondition(some(lambda task: task.running))
        @rule(data=st.data(), retryable=st.booleans())
        @step
        def fail(self, data: st.DataObject, retryable: bool) -> None:
            task_id = self.pick(data, lambda task: task.running)
            task = self.expected[task_id]
            retry_in = LONG if retryable else None
            assert store.attempts.fail(task_id, task.attempt, ERROR, retry_in)
            retrying = retryable and task.attempt < task.max_attempts
            self._end_attempt(task, S.RETRYING if retrying else S.FAILED, ERROR_TYPE)
            events["failures"] += 1

        @precondition(some(lambda task: task.status is S.RETRYING))
        @rule(data=st.data(), late_report=st.booleans(), succeeded=st.booleans())
        @step
        def retry(self, data: st.DataObject, late_report: bool, succeeded: bool) -> None:
            """A RETRYING task's backoff elapses: it is promoted, dispatched, claimed again;
            and maybe the worker of the attempt before, thought lost, reports while the new
            one runs."""
            task_id = self.pick(data, lambda task: task.status is S.RETRYING)
            self._elapse_timers("id = %s", (task_id,))
            self._promote_due()
            self.observe()  # RETRYING -> PENDING, then PENDING -> RUNNING: two transitions
            self._dispatch_ready()
            self._claim(task_id)
            events["retries"] += 1
            if late_report:
                self._refuse_late_report(task_id, self.expected[task_id].attempt - 1, succeeded)

        @precondition(some(lambda task: task.ended_attempts > 0))
        @rule(data=st.data(), succeeded=st.booleans())
        @step
        def late_completion_of_an_older_attempt(self, data: st.DataObject, succeeded: bool) -> None:
            """The worker of an attempt that has ended (lost, failed, or the task finished)
            reports at last: the fence refuses it, whatever the task's status, and neither row
            changes."""
            task_id = self.pick(data, lambda task: task.ended_attempts > 0)
            task = self.expected[task_id]
            older = data.draw(st.integers(1, task.ended_attempts), label="older attempt")
            self._refuse_late_report(task_id, older, succeeded)

        @precondition(some(lambda task: task.running and not task.lease_lost))
        @rule(data=st.data())
        @step
        def crash(self, data: st.DataObject) -> None:
            """The worker running the task dies: its lease is left to expire."""
            task_id = self.pick(data, lambda task: task.running and not task.lease_lost)
            self._expire_lease("id = %s", (task_id,))

        @precondition(some(lambda task: task.lease_lost))
        @rule()
        @step
        def expire_leases(self) -> None:
            events["lost workers recovered"] += self._recover_expired_leases()

        @precondition(some(lambda task: task.claimable))
        @rule()
        @step
        def repair_lost_messages(self) -> None:
            """Every dispatched, unclaimed task's republish time comes: its message goes out
            again (the task stays as it was, and a delivery of it may claim it)."""
            expected = {
                key: task.attempt + 1 for key, task in self.expected.items() if task.claimable
            }
            store.sql.execute(
                "UPDATE tasks SET republish_at = now() "
                "WHERE status = 'PENDING' AND dispatched_at IS NOT NULL"
            )
            messages = store.run(store.due.republish_lost(100))
            assert {message.task_id: message.attempt for message in messages} == expected
            assert len(messages) == len(expected)
            events["lost messages republished"] += len(messages)

        @precondition(some(lambda task: True))
        @rule(data=st.data(), running=st.booleans())
        @step
        def cancel(self, data: st.DataObject, running: bool) -> None:
            """Any task, or a RUNNING one when there is one: that one is only asked to stop,
            and the end of its attempt records CANCELLED. (Two arguments: hypothesis favours
            rules with fewer, and cancels would then end most tasks before they ran.)"""
            if running and any(task.running for task in self.expected.values()):
                self._cancel(self.pick(data, lambda task: task.running))
                events["running cancels"] += 1
            else:
                self._cancel(self.pick(data, lambda task: True))

        # -- actions: the store call, the model's prediction, the check of the result -------

        def _refuse_late_report(self, task_id: uuid.UUID, older: int, succeeded: bool) -> None:
            before = self.row(task_id)
            if succeeded:
                recorded = store.attempts.succeed(task_id, older, {"late": True})
            else:
                recorded = store.attempts.fail(task_id, older, ERROR, LONG)
            assert not recorded, f"attempt {older} of {task_id} recorded an outcome late"
            assert self.row(task_id) == before
            events["late completions refused"] += 1
            if self.expected[task_id].running:
                events["late completions of a running task refused"] += 1

        def _promote_due(self) -> int:
            due = [task for task in self.expected.values() if task.timer_due]
            assert store.run(store.due.promote_due(100)) == len(due)
            for task in due:
                task.status, task.due, task.dispatched = S.PENDING, False, False
            return len(due)

        def _dispatch_ready(self) -> None:
            ready = {
                key: task
                for key, task in self.expected.items()
                if task.status is S.PENDING and not task.dispatched
            }
            passed = store.run(store.due.dispatch_ready(100))
            messages = {message.task_id: message.attempt for message in passed.messages}
            assert messages == {key: task.attempt + 1 for key, task in ready.items()}
            for task in ready.values():
                task.dispatched = True

        def _claim(self, task_id: uuid.UUID, worker: str = "worker") -> None:
            task = self.expected[task_id]
            claimed = store.attempts.claim(task_id, worker, LEASE)
            assert claimed is not None, f"{task_id} ({task.status}, dispatched) was not claimed"
            assert claimed.task_id == task_id and claimed.attempt == task.attempt + 1
            task.status, task.lease_lost = S.RUNNING, False
            task.attempts.append((S.RUNNING.value, None))

        def _succeed(self, task_id: uuid.UUID) -> None:
            task = self.expected[task_id]
            result = {"attempt": task.attempt}
            assert store.attempts.succeed(task_id, task.attempt, result)
            self._end_attempt(task, S.SUCCESS, None)
            stored = store.sql.execute(
                "SELECT result, finished_at IS NOT NULL FROM tasks WHERE id = %s", (task_id,)
            ).fetchone()
            assert stored == (None if task.status is S.CANCELLED else result, True)

        def _end_attempt(self, task: Expected, status: S, error_type: str | None) -> None:
            """A cancel asked for while the attempt ran wins over its outcome. The task's
            dependents are settled in the same transaction as its end."""
            if task.cancel_requested:
                task.end_attempt(S.CANCELLED, error_type)
                if not self.tearing_down:
                    events["cancels honoured at the end of an attempt"] += 1
            else:
                task.end_attempt(status, error_type)
            self._settle_blocked()

        def _settle_blocked(self) -> None:
            """What the end of a dependency does to the BLOCKED tasks (transitively): one whose
            dependency failed or was cancelled is CANCELLED, one whose dependencies have all
            succeeded is PENDING, ready for its queue."""
            changed = True
            while changed:
                changed = False
                for task in self.expected.values():
                    if task.status is not S.BLOCKED:
                        continue
                    parents = [self.expected[parent].status for parent in task.depends_on]
                    if any(status in (S.FAILED, S.CANCELLED) for status in parents):
                        task.status, changed = S.CANCELLED, True
                        if not self.tearing_down:
                            events["dependents cancelled by a dependency's end"] += 1
                    elif all(status is S.SUCCESS for status in parents):
                        task.status, changed = S.PENDING, True
                        events["dependents released"] += 1

        def _expire_lease(self, where: str, parameters: tuple[Any, ...] = ()) -> None:
            where = f"status = 'RUNNING' AND {where}"
            store.sql.execute(
                f"UPDATE tasks SET lease_expires_at = now() - interval '1 s' WHERE {where}",
                parameters,
            )
            for key, task in self._matching(where, parameters):
                assert task.running, f"{key} is {task.status}, not RUNNING"
                task.lease_lost = True

        def _recover_expired_leases(self) -> int:
            """Each lost attempt is recorded FAILED with WorkerLost; the task retries while it
            has attempts left, else FAILED (CANCELLED when a cancel was asked for)."""
            lost = [task for task in self.expected.values() if task.running and task.lease_lost]
            assert recover_expired_leases(store.attempts, 100) == len(lost)
            for task in lost:
                retrying = task.attempt < task.max_attempts
                error = CANCELLED_ERROR if task.cancel_requested else WORKER_LOST_ERROR
                self._end_attempt(task, S.RETRYING if retrying else S.FAILED, error)
            return len(lost)

        def _elapse_timers(self, where: str, parameters: tuple[Any, ...] = ()) -> None:
            where = f"status IN ('SCHEDULED', 'RETRYING') AND {where}"
            store.sql.execute(
                f"UPDATE tasks SET run_at = now() - interval '1 s' WHERE {where}", parameters
            )
            for key, task in self._matching(where, parameters):
                assert task.status in (S.SCHEDULED, S.RETRYING), f"{key} is {task.status}"
                task.due = True

        def _matching(
            self, where: str, parameters: tuple[Any, ...]
        ) -> list[tuple[uuid.UUID, Expected]]:
            rows = store.sql.execute(f"SELECT id FROM tasks WHERE {where}", parameters)
            return [(row[0], self.expected[row[0]]) for row in rows]

        def _cancel(self, task_id: uuid.UUID) -> None:
            task = self.expected[task_id]
            cancelled = store.run(store.repository.cancel(TENANT, task_id))
            if task.status.is_terminal:
                assert cancelled is None
                return
            assert cancelled is not None
            task.cancel_requested = True
            if not task.running:
                task.status = S.CANCELLED
                self._settle_blocked()
            assert cancelled.status is task.status

        # -- invariants --------------------------------------------------------------------

        tearing_down = False

        @invariant()
        def store_matches_model_and_moved_legally(self) -> None:
            self.observe()

        def observe(self) -> None:
            now = self._read_store()
            assert now.keys() == self.expected.keys()
            for task_id, seen in now.items():
                self._check_change(task_id, self.observed.get(task_id), seen)
                self._check_model(task_id, self.expected[task_id], seen)
            self.observed = now
            self.in_sync = True

        def _read_store(self) -> dict[uuid.UUID, Observed]:
            attempts: dict[uuid.UUID, list[tuple[int, str, str | None]]] = {}
            for task_id, number, status, error_type in store.sql.execute(
                "SELECT task_id, number, status, error_type FROM task_attempts "
                "ORDER BY task_id, number"
            ):
                attempts.setdefault(task_id, []).append((number, status, error_type))
            rows = store.sql.execute(
                "SELECT id, status, attempt, dispatched_at IS NOT NULL, "
                "cancel_requested_at IS NOT NULL, coalesce(lease_expires_at < now(), false) "
                "FROM tasks"
            )
            return {
                row[0]: Observed(
                    S(row[1]), row[2], row[3], row[4], row[5], tuple(attempts.get(row[0], []))
                )
                for row in rows
            }

        @staticmethod
        def _check_change(task_id: uuid.UUID, before: Observed | None, now: Observed) -> None:
            """Whatever the model says: one legal step at most, terminal stays terminal, the
            attempt never goes back, attempt rows are numbered 1..attempt."""
            assert [number for number, _, _ in now.attempts] == list(range(1, now.attempt + 1))
            if before is None:
                return
            if now.status is not before.status:
                assert not before.status.is_terminal, f"{task_id}: {before.status} changed"
                assert can_transition(before.status, now.status), (
                    f"{task_id}: illegal {before.status} -> {now.status}"
                )
            assert now.attempt >= before.attempt
            # Rows of earlier attempts are finished: they never change again.
            assert now.attempts[: before.attempt - 1] == before.attempts[:-1]

        @staticmethod
        def _check_model(task_id: uuid.UUID, expected: Expected, now: Observed) -> None:
            assert (now.status, now.attempt, now.dispatched) == (
                expected.status,
                expected.attempt,
                expected.dispatched,
            ), task_id
            rows = [(status, error_type) for _, status, error_type in now.attempts]
            assert rows == expected.attempts, task_id
            if not expected.status.is_terminal:
                assert now.cancel_requested == expected.cancel_requested, task_id
            if expected.running:
                assert now.lease_lost == expected.lease_lost, task_id

        # -- the end: faults stop ----------------------------------------------------------

        def teardown(self) -> None:
            if self.in_sync:  # after a failed step the store is not what the model says
                self.tearing_down = True
                self._drive_every_task_to_an_end()

        def _drive_every_task_to_an_end(self) -> None:
            """No more crashes, lost messages or failures: leases of RUNNING tasks expire,
            timers come due, the dispatcher promotes and dispatches, and workers run and
            complete every PENDING task, until every task is terminal."""
            for _ in range(len(self.expected) + 3):  # a chain of dependents: one a round
                if all(task.status.is_terminal for task in self.expected.values()):
                    break
                self._expire_lease("true")
                self._recover_expired_leases()
                self.observe()
                self._elapse_timers("true")
                self._promote_due()
                self.observe()
                self._dispatch_ready()
                for task_id in [key for key, task in self.expected.items() if task.claimable]:
                    self._claim(task_id)
                self.observe()
                for task_id in [key for key, task in self.expected.items() if task.running]:
                    self._succeed(task_id)
                self.observe()
            unfinished = {
                key: status
                for key, status in self.observed.items()
                if not status.status.is_terminal
            }
            assert not unfinished, f"tasks never finished: {unfinished}"

    return TaskLifeCycle


# A failure is shrunk, which may take hypothesis up to 5 minutes on this store.
@pytest.mark.timeout(600)
def test_task_life_cycle_against_the_real_store(settings: Settings, clean_db: None) -> None:
    events: Counter[str] = Counter()
    with opened_store(settings) as store:
        store.sql.execute(
            "INSERT INTO queues (tenant, name) VALUES (%s, 'default') ON CONFLICT DO NOTHING",
            (TENANT,),
        )
        machine = make_machine(store, events)
        machine.TestCase.settings = SETTINGS
        machine.TestCase().runTest()
    unreached = [event for event in EVENTS if events[event] == 0]
    assert not unreached, f"no example reached {unreached}; seen: {sorted(events.items())}"


SETTINGS = settings(
    max_examples=40,  # enough that every counted event happens with margin
    stateful_step_count=50,
    derandomize=True,  # the same examples on every run: CI stays deterministic
    database=None,  # no .hypothesis folder; derandomized runs would not use it anyway
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
