"""A property-based stateful test of the task life cycle against the real PostgreSQL store:
schedule, deliver (once and twice), crash, expire leases, repair lost messages, complete,
fail, retry and cancel in any order. Invariants: only legal transitions, terminal states never
change, attempts only grow (one attempt row each), and every task ends terminal once the
faults stop."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from taskscheduler.adapters.postgres.attempt_store import PostgresAttemptStore
from taskscheduler.adapters.postgres.due_tasks import PostgresDueTasks
from taskscheduler.adapters.postgres.engine import make_async_engine, make_sync_engine
from taskscheduler.adapters.postgres.task_repository import PostgresTaskRepository
from taskscheduler.core.execution import AttemptError, recover_expired_leases
from taskscheduler.core.model import NewTask, RetryPolicy, TaskStatus
from taskscheduler.core.states import can_transition
from taskscheduler.settings import Settings

S = TaskStatus
LEASE = timedelta(seconds=30)
ERROR = AttemptError("builtins.RuntimeError", "boom")


def make_machine(app_settings: Settings) -> type[RuleBasedStateMachine]:
    class TaskLifeCycle(RuleBasedStateMachine):
        tasks = Bundle("tasks")

        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.engine = make_async_engine(app_settings)
            self.sync_engine = make_sync_engine(app_settings)
            self.repository = PostgresTaskRepository.from_settings(self.engine, app_settings)
            self.due = PostgresDueTasks.from_settings(self.engine, app_settings)
            self.attempts = PostgresAttemptStore(self.sync_engine)
            self.sql = psycopg.connect(app_settings.libpq_url, autocommit=True)
            self.sql.execute("TRUNCATE tasks CASCADE")
            self.sql.execute(
                "INSERT INTO queues (tenant, name) VALUES ('t', 'default') ON CONFLICT DO NOTHING"
            )
            self.seen: dict[uuid.UUID, tuple[S, int]] = {}

        def run(self, coroutine: Any) -> Any:
            return self.loop.run_until_complete(coroutine)

        def dispatched(self, task_id: uuid.UUID) -> bool:
            row = self.sql.execute(
                "SELECT dispatched_at IS NOT NULL FROM tasks WHERE id = %s", (task_id,)
            ).fetchone()
            assert row is not None
            return bool(row[0])

        def state(self, task_id: uuid.UUID) -> tuple[S, int]:
            row = self.sql.execute(
                "SELECT status, attempt FROM tasks WHERE id = %s", (task_id,)
            ).fetchone()
            assert row is not None
            return S(row[0]), int(row[1])

        # -- rules -------------------------------------------------------------------------

        @rule(target=tasks, later=st.booleans(), max_attempts=st.integers(1, 3))
        def schedule(self, later: bool, max_attempts: int) -> uuid.UUID:
            new = NewTask(
                id=uuid.uuid4(),
                tenant="t",
                kind="demo.echo",
                payload={},
                status=S.SCHEDULED if later else S.PENDING,
                retry_policy=RetryPolicy(max_attempts=max_attempts, jitter=False),
                timeout=None,
                run_at=datetime.now(UTC) - timedelta(seconds=1),  # due already
            )
            task, created = self.run(self.repository.insert(new))
            assert created
            self.seen[new.id] = (task.status, 0)
            return new.id

        @rule()
        def dispatch_due_timers(self) -> None:
            self.sql.execute(
                "UPDATE tasks SET run_at = now() - interval '1 s' WHERE status = 'RETRYING'"
            )
            self.run(self.due.promote_due(100))

        @rule()
        def dispatch_ready(self) -> None:
            self.run(self.due.dispatch_ready(100))

        @rule(task_id=tasks)
        def deliver(self, task_id: uuid.UUID) -> None:
            status, attempt = self.state(task_id)
            dispatched = self.dispatched(task_id)
            claimed = self.attempts.claim(task_id, "worker", LEASE)
            assert (claimed is not None) == (status is S.PENDING and dispatched)
            if claimed is not None:
                assert claimed.attempt == attempt + 1

        @rule(task_id=tasks)
        def deliver_twice(self, task_id: uuid.UUID) -> None:
            first = self.attempts.claim(task_id, "worker-a", LEASE)
            second = self.attempts.claim(task_id, "worker-b", LEASE)
            assert second is None, "a second delivery of the same message claimed the task"
            del first

        @rule(task_id=tasks)
        def complete(self, task_id: uuid.UUID) -> None:
            status, attempt = self.state(task_id)
            assert self.attempts.succeed(task_id, attempt, {"ok": True}) == (status is S.RUNNING)

        @rule(task_id=tasks, retry=st.booleans())
        def fail(self, task_id: uuid.UUID, retry: bool) -> None:
            status, attempt = self.state(task_id)
            retry_in = timedelta(0) if retry else None
            assert self.attempts.fail(task_id, attempt, ERROR, retry_in) == (status is S.RUNNING)

        @rule(task_id=tasks)
        def late_completion_of_an_older_attempt(self, task_id: uuid.UUID) -> None:
            _, attempt = self.state(task_id)
            assert not self.attempts.succeed(task_id, attempt - 1, {"late": True})

        @rule(task_id=tasks)
        def crash(self, task_id: uuid.UUID) -> None:
            """The worker running the task dies: its lease is left to expire."""
            self.sql.execute(
                "UPDATE tasks SET lease_expires_at = now() - interval '1 s' "
                "WHERE id = %s AND status = 'RUNNING'",
                (task_id,),
            )

        @rule()
        def expire_leases(self) -> None:
            recover_expired_leases(self.attempts, 100)

        @rule()
        def repair_lost_messages(self) -> None:
            before = {task_id: self.state(task_id) for task_id in self.seen}
            self.sql.execute(
                "UPDATE tasks SET republish_at = now() "
                "WHERE status = 'PENDING' AND dispatched_at IS NOT NULL"
            )
            self.run(self.due.republish_lost(100))
            assert {task_id: self.state(task_id) for task_id in self.seen} == before

        @rule(task_id=tasks)
        def cancel(self, task_id: uuid.UUID) -> None:
            status, _ = self.state(task_id)
            result = self.run(self.repository.cancel("t", task_id))
            assert (result is None) == status.is_terminal

        # -- invariants --------------------------------------------------------------------

        @invariant()
        def only_legal_transitions_and_attempts_only_grow(self) -> None:
            for task_id, (old_status, old_attempt) in self.seen.items():
                status, attempt = self.state(task_id)
                if status is not old_status:
                    assert not old_status.is_terminal, f"terminal {old_status} became {status}"
                    assert can_transition(old_status, status) or _via_pending(old_status, status)
                assert attempt >= old_attempt
                rows = self.sql.execute(
                    "SELECT count(*) FROM task_attempts WHERE task_id = %s", (task_id,)
                ).fetchone()
                assert rows is not None and rows[0] == attempt
                self.seen[task_id] = (status, attempt)

        def teardown(self) -> None:
            try:
                self._drive_every_task_to_an_end()
            finally:
                self.sql.close()
                self.run(self.engine.dispose())
                self.sync_engine.dispose()
                self.loop.close()

        def _drive_every_task_to_an_end(self) -> None:
            """Faults stop: leases expire, timers fire, queues dispatch, workers run what is
            PENDING."""
            for _ in range(10):
                self.crash_all_running()
                self.expire_leases()
                self.dispatch_due_timers()
                self.dispatch_ready()
                for task_id in list(self.seen):
                    if self.attempts.claim(task_id, "worker", LEASE) is not None:
                        _, attempt = self.state(task_id)
                        self.attempts.succeed(task_id, attempt, None)
            for task_id in self.seen:
                assert self.state(task_id)[0].is_terminal, f"{task_id} never finished"

        def crash_all_running(self) -> None:
            self.sql.execute(
                "UPDATE tasks SET lease_expires_at = now() - interval '1 s' "
                "WHERE status = 'RUNNING'"
            )

    return TaskLifeCycle


def _via_pending(old: S, new: S) -> bool:
    """Between two observations a task may pass through PENDING (due -> claimed)."""
    return can_transition(old, S.PENDING) and can_transition(S.PENDING, new)


@pytest.mark.timeout(300)
def test_task_life_cycle_against_the_real_store(settings: Settings, clean_db: None) -> None:
    machine = make_machine(settings)
    machine.TestCase.settings = settings_profile
    machine.TestCase().runTest()


settings_profile = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
