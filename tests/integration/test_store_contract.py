"""One contract, two implementations: the in-memory stores of taskscheduler.testing and the
PostgreSQL ones answer every case here alike, which is what keeps the fake honest."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from taskscheduler.adapters.postgres.attempt_store import PostgresAttemptStore
from taskscheduler.adapters.postgres.engine import make_async_engine, make_sync_engine
from taskscheduler.adapters.postgres.queue_repository import PostgresQueueRepository
from taskscheduler.adapters.postgres.task_repository import PostgresTaskRepository
from taskscheduler.core.errors import IdempotencyConflict, InvalidArgument, QueueExists
from taskscheduler.core.model import (
    NewTask,
    Progress,
    QueueSettings,
    QueueState,
    RetryPolicy,
    TaskFilter,
    TaskStatus,
)
from taskscheduler.core.ports import (
    AttemptEnd,
    AttemptError,
    AttemptStore,
    ClaimedAttempt,
    QueueRepository,
    TaskRepository,
)
from taskscheduler.settings import Settings
from taskscheduler.testing import (
    InMemoryAttemptStore,
    InMemoryDatabase,
    InMemoryQueueRepository,
    InMemoryTaskRepository,
)

S = TaskStatus
T = "tenant-a"
LEASE = timedelta(seconds=30)
ERROR = AttemptError("builtins.ValueError", "boom", "Traceback ...")


@dataclass
class Stores:
    tasks: TaskRepository
    attempts: AttemptStore
    queues: QueueRepository
    let_through: Callable[[uuid.UUID], None]
    """Marks a PENDING task as its queue lets it through (what a dispatcher pass does)."""
    expire_lease: Callable[[uuid.UUID], None]

    def claim(self, task_id: uuid.UUID) -> ClaimedAttempt:
        self.let_through(task_id)
        claimed = self.attempts.claim(task_id, "w1", LEASE)
        assert claimed is not None
        return claimed


def new_task(
    status: S = S.PENDING, tenant: str = T, max_attempts: int = 3, **fields: Any
) -> NewTask:
    return NewTask(
        id=uuid.uuid4(),
        tenant=tenant,
        kind="demo.echo",
        status=status,
        retry_policy=RetryPolicy(max_attempts=max_attempts),
        timeout=None,
        run_at=datetime.now(UTC),
        **{"payload": {"n": 1}, **fields},
    )


def in_memory() -> Stores:
    database = InMemoryDatabase()

    def let_through(task_id: uuid.UUID) -> None:
        with database.lock:
            row = database.rows[task_id]
            if row.task.status is S.PENDING:
                row.dispatched_at = database.clock()

    def expire_lease(task_id: uuid.UUID) -> None:
        with database.lock:
            database.rows[task_id].lease_expires_at = database.clock() - timedelta(seconds=1)

    return Stores(
        InMemoryTaskRepository(database),
        InMemoryAttemptStore(database),
        InMemoryQueueRepository(database),
        let_through,
        expire_lease,
    )


@pytest.fixture(params=["memory", "postgres"])
def database(request: pytest.FixtureRequest) -> Settings | None:
    """None for the in-memory stores; the settings of a clean PostgreSQL database else (the
    servers start only for the cases that need them)."""
    if request.param == "memory":
        return None
    request.getfixturevalue("clean_db")
    settings: Settings = request.getfixturevalue("settings")
    return settings


@pytest.fixture
async def stores(database: Settings | None) -> AsyncIterator[Stores]:
    if database is None:
        yield in_memory()
        return
    settings = database
    engine = make_async_engine(settings)
    sync_engine = make_sync_engine(settings)
    attempts = PostgresAttemptStore.from_settings(settings)

    def execute(statement: str, task_id: uuid.UUID) -> None:
        with sync_engine.begin() as conn:
            conn.execute(sa.text(statement), {"id": task_id})

    try:
        yield Stores(
            PostgresTaskRepository.from_settings(engine, settings),
            attempts,
            PostgresQueueRepository(engine),
            lambda task_id: execute(
                "UPDATE tasks SET dispatched_at = now() WHERE id = :id AND status = 'PENDING'",
                task_id,
            ),
            lambda task_id: execute(
                "UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE id = :id",
                task_id,
            ),
        )
    finally:
        attempts.close()
        sync_engine.dispose()
        await engine.dispose()


async def test_an_idempotency_key_names_one_task_per_tenant(stores: Stores) -> None:
    first, created = await stores.tasks.insert(new_task(request_id="k", request_fingerprint="f"))
    again, created_again = await stores.tasks.insert(
        new_task(request_id="k", request_fingerprint="f")
    )
    assert (created, created_again, again.id) == (True, False, first.id)
    other, other_created = await stores.tasks.insert(
        new_task(tenant="tenant-b", request_id="k", request_fingerprint="f")
    )
    assert other_created and other.id != first.id


async def test_a_batch_with_a_conflicting_key_stores_nothing(stores: Stores) -> None:
    await stores.tasks.insert(new_task(request_id="k", request_fingerprint="f"))
    batch = [new_task(), new_task(request_id="k", request_fingerprint="other")]
    with pytest.raises(IdempotencyConflict):
        await stores.tasks.insert_many(batch)
    assert await stores.tasks.get(T, batch[0].id) is None
    with pytest.raises(InvalidArgument) as excinfo:
        await stores.tasks.insert_many([new_task(queue="missing")])
    assert excinfo.value.field == "queue"


async def test_a_task_is_read_by_its_tenant_only(stores: Stores) -> None:
    task, _ = await stores.tasks.insert(new_task())
    assert await stores.tasks.get("tenant-b", task.id) is None
    read = await stores.tasks.get(T, task.id)
    assert read is not None
    assert (read.status, read.version, read.attempt, read.payload) == (S.PENDING, 1, 0, {"n": 1})
    assert await stores.tasks.cancel("tenant-b", task.id) is None


async def test_pages_are_newest_first_and_filtered(stores: Stores) -> None:
    inserted = [(await stores.tasks.insert(new_task()))[0] for _ in range(5)]
    scheduled, _ = await stores.tasks.insert(new_task(S.SCHEDULED))
    seen = []
    cursor = None
    while True:
        page = await stores.tasks.list(T, TaskFilter(frozenset({S.PENDING})), 2, cursor)
        seen.extend(page.tasks)
        cursor = page.next_cursor
        if cursor is None:
            break
    newest_first = sorted(inserted, key=lambda task: (task.create_time, task.id), reverse=True)
    assert [task.id for task in seen] == [task.id for task in newest_first]
    everything = await stores.tasks.list(T, TaskFilter(), 10, None)
    assert scheduled.id in {task.id for task in everything.tasks}
    assert (await stores.tasks.list("tenant-b", TaskFilter(), 10, None)).tasks == []


async def test_tasks_are_filtered_by_payload_contents_as_jsonb_contains(stores: Stores) -> None:
    payloads: list[dict[str, Any]] = [
        {"to": "a@b.c", "tags": ["x", "y"], "n": 3, "vip": True, "customer": {"id": "c1"}},
        {"to": "a@b.c", "tags": ["y"], "n": 3.5, "vip": False},
        {"to": "other", "n": 1, "customer": {"id": "c1", "plan": "pro"}},
    ]
    ids = [(await stores.tasks.insert(new_task(payload=p)))[0].id for p in payloads]

    async def matching(part: dict[str, Any]) -> set[int]:
        found = await stores.tasks.list(T, TaskFilter(payload_contains=part), 10, None)
        return {ids.index(task.id) for task in found.tasks}

    assert await matching({"to": "a@b.c"}) == {0, 1}
    assert await matching({"tags": ["y"]}) == {0, 1}
    assert await matching({"tags": ["x", "y"], "n": 3.0}) == {0}  # numbers equal by value
    assert await matching({"customer": {"id": "c1"}}) == {0, 2}
    assert await matching({"vip": True}) == {0}
    assert await matching({"n": True}) == set()  # true is not 1
    assert await matching({"customer": "c1"}) == set()
    assert await matching({}) == {0, 1, 2}


async def test_tasks_are_filtered_by_their_last_attempts_error_type(stores: Stores) -> None:
    failed, _ = await stores.tasks.insert(new_task(max_attempts=1))
    retrying, _ = await stores.tasks.insert(new_task(max_attempts=2))
    other, _ = await stores.tasks.insert(new_task(max_attempts=1))
    await stores.tasks.insert(new_task())  # no attempt yet: no error type
    for task, error in ((failed, ERROR), (retrying, ERROR), (other, AttemptError("x.Other", ""))):
        stores.attempts.fail(task.id, stores.claim(task.id).attempt, error, timedelta(hours=1))

    async def matching(error_type: str) -> set[uuid.UUID]:
        found = await stores.tasks.list(T, TaskFilter(error_type=error_type), 10, None)
        return {task.id for task in found.tasks}

    assert await matching("builtins.ValueError") == {failed.id, retrying.id}
    assert await matching("x.Other") == {other.id}
    assert await matching("builtins.KeyError") == set()


async def test_cancel_ends_a_waiting_task_and_marks_a_running_one(stores: Stores) -> None:
    waiting, _ = await stores.tasks.insert(new_task())
    cancelled = await stores.tasks.cancel(T, waiting.id)
    assert cancelled is not None
    assert (cancelled.status, cancelled.version, cancelled.cancel_requested) == (
        S.CANCELLED,
        2,
        True,
    )
    assert cancelled.finish_time is not None
    assert await stores.tasks.cancel(T, waiting.id) is None  # terminal: nothing to cancel
    running, _ = await stores.tasks.insert(new_task())
    claimed = stores.claim(running.id)
    asked = await stores.tasks.cancel(T, running.id)
    assert asked is not None and (asked.status, asked.cancel_requested) == (S.RUNNING, True)
    assert stores.attempts.renew(running.id, claimed.attempt, LEASE).cancel_requested
    assert stores.attempts.succeed(running.id, claimed.attempt, {"ignored": True})
    ended = await stores.tasks.get(T, running.id)
    assert ended is not None and (ended.status, ended.result) == (S.CANCELLED, None)
    assert [attempt.status for attempt in ended.attempts] == [S.CANCELLED]


async def test_a_task_not_let_through_is_not_claimed(stores: Stores) -> None:
    task, _ = await stores.tasks.insert(new_task())
    assert stores.attempts.claim(task.id, "w1", LEASE) is None
    scheduled, _ = await stores.tasks.insert(new_task(S.SCHEDULED))
    stores.let_through(scheduled.id)
    assert stores.attempts.claim(scheduled.id, "w1", LEASE) is None


async def test_progress_is_kept_for_the_running_attempt_only(stores: Stores) -> None:
    task, _ = await stores.tasks.insert(new_task())
    claimed = stores.claim(task.id)
    assert not stores.attempts.report_progress(task.id, 2, Progress(1))  # not this attempt
    assert stores.attempts.report_progress(task.id, claimed.attempt, Progress(3, 10, "three"))
    running = await stores.tasks.get(T, task.id)
    assert running is not None and running.progress is not None
    assert (running.progress.done, running.progress.total) == (3, 10)
    assert running.progress.message == "three" and running.progress.update_time is not None
    assert stores.attempts.succeed(task.id, claimed.attempt, None)
    assert not stores.attempts.report_progress(task.id, claimed.attempt, Progress(4))
    ended = await stores.tasks.get(T, task.id)
    assert ended is not None and ended.progress == running.progress  # kept, not changed


async def test_completions_are_fenced_by_attempt(stores: Stores) -> None:
    task, _ = await stores.tasks.insert(new_task())
    claimed = stores.claim(task.id)
    assert claimed.attempt == 1
    assert stores.attempts.claim(task.id, "w2", LEASE) is None  # RUNNING: a duplicate delivery
    assert not stores.attempts.succeed(task.id, 2, "wrong attempt")
    assert not stores.attempts.fail(task.id, 0, ERROR, None)
    assert not stores.attempts.renew(task.id, 2, LEASE).held
    assert stores.attempts.renew(task.id, 1, LEASE).held
    assert stores.attempts.succeed(task.id, 1, {"ok": True})
    assert not stores.attempts.succeed(task.id, 1, {"twice": True})
    assert not stores.attempts.fail(task.id, 1, ERROR, None)
    done = await stores.tasks.get(T, task.id)
    assert done is not None
    assert (done.status, done.result, done.error, done.version) == (S.SUCCESS, {"ok": True}, "", 3)
    assert [(a.number, a.status, a.worker) for a in done.attempts] == [(1, S.SUCCESS, "w1")]


async def test_a_failure_retries_while_attempts_are_left(stores: Stores) -> None:
    task, _ = await stores.tasks.insert(new_task(max_attempts=2))
    before = datetime.now(UTC)
    assert stores.attempts.fail(task.id, stores.claim(task.id).attempt, ERROR, timedelta(hours=1))
    retrying = await stores.tasks.get(T, task.id)
    assert retrying is not None
    assert (retrying.status, retrying.finish_time, retrying.error) == (
        S.RETRYING,
        None,
        "builtins.ValueError: boom",
    )
    assert retrying.run_at >= before + timedelta(minutes=59)
    attempt = retrying.attempts[0]
    assert (attempt.status, attempt.error_type, attempt.traceback) == (
        S.FAILED,
        "builtins.ValueError",
        "Traceback ...",
    )
    assert stores.attempts.claim(task.id, "w1", LEASE) is None  # RETRYING until it is due


async def test_the_last_attempt_fails_whatever_the_caller_asked(stores: Stores) -> None:
    task, _ = await stores.tasks.insert(new_task(max_attempts=1))
    assert stores.attempts.fail(task.id, stores.claim(task.id).attempt, ERROR, timedelta(0))
    failed = await stores.tasks.get(T, task.id)
    assert failed is not None and failed.status is S.FAILED and failed.finish_time is not None


async def test_an_end_and_the_next_claim_are_recorded_together(stores: Stores) -> None:
    first, _ = await stores.tasks.insert(new_task())
    second, _ = await stores.tasks.insert(new_task())
    third, _ = await stores.tasks.insert(new_task(max_attempts=2))
    stores.let_through(second.id)
    stores.let_through(third.id)
    end = AttemptEnd(first.id, stores.claim(first.id).attempt, {"ok": 1})
    claimed = stores.attempts.end_and_claim(end, second.id, "w1", LEASE)
    assert claimed is not None
    assert (claimed.task_id, claimed.attempt, claimed.payload) == (second.id, 1, {"n": 1})
    failed = AttemptEnd(second.id, 1, error=ERROR, retry_in=None)
    assert stores.attempts.end_and_claim(failed, third.id, "w1", LEASE) is not None
    retrying = AttemptEnd(third.id, 1, error=ERROR, retry_in=timedelta(hours=1))
    # Not claimable (RUNNING already): the end is recorded all the same.
    assert stores.attempts.end_and_claim(retrying, second.id, "w2", LEASE) is None
    tasks = [await stores.tasks.get(T, task.id) for task in (first, second, third)]
    assert [(t.status, t.result, t.error) for t in tasks if t is not None] == [
        (S.SUCCESS, {"ok": 1}, ""),
        (S.FAILED, None, "builtins.ValueError: boom"),
        (S.RETRYING, None, "builtins.ValueError: boom"),
    ]
    assert [[(a.number, a.status, a.worker) for a in t.attempts] for t in tasks if t] == [
        [(1, S.SUCCESS, "w1")],
        [(1, S.FAILED, "w1")],
        [(1, S.FAILED, "w1")],
    ]


async def test_an_end_that_is_fenced_off_still_lets_the_next_claim_through(
    stores: Stores,
) -> None:
    first, _ = await stores.tasks.insert(new_task())
    second, _ = await stores.tasks.insert(new_task())
    stores.claim(first.id)
    stores.let_through(second.id)
    late = AttemptEnd(first.id, 2, {"late": True})  # another attempt's end
    claimed = stores.attempts.end_and_claim(late, second.id, "w1", LEASE)
    assert claimed is not None and claimed.task_id == second.id
    running = await stores.tasks.get(T, first.id)
    assert running is not None and (running.status, running.result) == (S.RUNNING, None)


async def test_only_an_expired_lease_is_recovered(stores: Stores) -> None:
    task, _ = await stores.tasks.insert(new_task())
    claimed = stores.claim(task.id)
    assert stores.attempts.expired_leases(10) == []
    assert not stores.attempts.fail(task.id, 1, ERROR, None, only_if_lease_expired=True)
    stores.expire_lease(task.id)
    [expired] = stores.attempts.expired_leases(10)
    assert (expired.task_id, expired.attempt, expired.cancel_requested) == (task.id, 1, False)
    assert expired.start_time is not None
    assert stores.attempts.fail(task.id, claimed.attempt, ERROR, None, only_if_lease_expired=True)
    assert stores.attempts.expired_leases(10) == []


async def test_counts_by_status(stores: Stores) -> None:
    for status in (S.PENDING, S.PENDING, S.SCHEDULED):
        await stores.tasks.insert(new_task(status))
    cancelled, _ = await stores.tasks.insert(new_task())
    await stores.tasks.cancel(T, cancelled.id)
    counts = await stores.tasks.count(T, timedelta(hours=1))
    assert {status: n for status, n in counts.items() if n} == {
        S.PENDING: 2,
        S.SCHEDULED: 1,
        S.CANCELLED: 1,
    }


async def test_queues_default_names_pause_and_purge(stores: Stores) -> None:
    listed = await stores.queues.list(T, 10, "")
    assert [queue.name for queue in listed] == ["default"]
    created = await stores.queues.create(T, "mail", QueueSettings(max_concurrent=2))
    assert (created.state, created.settings.max_concurrent) == (QueueState.RUNNING, 2)
    with pytest.raises(QueueExists):
        await stores.queues.create(T, "mail", QueueSettings())
    with pytest.raises(QueueExists):
        await stores.queues.create(T, "default", QueueSettings())
    waiting, _ = await stores.tasks.insert(new_task(queue="mail"))
    stores.let_through(waiting.id)
    paused = await stores.queues.set_state(T, "mail", QueueState.PAUSED)
    assert paused is not None and (paused.state, paused.waiting, paused.running) == (
        QueueState.PAUSED,
        1,
        0,
    )
    assert stores.attempts.claim(waiting.id, "w1", LEASE) is None  # taken back by the pause
    assert await stores.queues.purge(T, "mail") == 1
    purged = await stores.tasks.get(T, waiting.id)
    assert purged is not None and purged.status is S.CANCELLED
    assert await stores.queues.purge(T, "nope") is None
    assert await stores.queues.set_state(T, "nope", QueueState.PAUSED) is None


def dependent(*parents: uuid.UUID) -> NewTask:
    return new_task(depends_on=parents, blocked_on=len(parents))


async def test_a_dependent_waits_blocked_and_is_released_by_its_last_dependency(
    stores: Stores,
) -> None:
    first, _ = await stores.tasks.insert(new_task())
    second, _ = await stores.tasks.insert(new_task())
    waiting, _ = await stores.tasks.insert(dependent(first.id, second.id))
    assert waiting.status is S.BLOCKED
    assert stores.attempts.claim(waiting.id, "w1", LEASE) is None
    for parent, result in ((first, {"a": 1}), (second, {"b": 2})):
        claimed = stores.claim(parent.id)
        assert stores.attempts.succeed(parent.id, claimed.attempt, result)
    released = await stores.tasks.get(T, waiting.id)
    assert released is not None and released.status is S.PENDING
    assert set(released.depends_on) == {first.id, second.id}
    claimed = stores.claim(waiting.id)
    assert dict(claimed.dependency_results) == {str(first.id): {"a": 1}, str(second.id): {"b": 2}}


async def test_a_failed_or_cancelled_dependency_cancels_what_depends_on_it(
    stores: Stores,
) -> None:
    parent, _ = await stores.tasks.insert(new_task(max_attempts=1))
    child, _ = await stores.tasks.insert(dependent(parent.id))
    grandchild, _ = await stores.tasks.insert(dependent(child.id))
    claimed = stores.claim(parent.id)
    assert stores.attempts.fail(parent.id, claimed.attempt, ERROR, None)
    for task_id in (child.id, grandchild.id):
        ended = await stores.tasks.get(T, task_id)
        assert ended is not None and ended.status is S.CANCELLED
        assert ended.error.startswith("taskscheduler.DependencyFailed")
    late, _ = await stores.tasks.insert(dependent(parent.id))
    assert late.status is S.CANCELLED  # its dependency had failed already
    with pytest.raises(InvalidArgument) as excinfo:
        await stores.tasks.insert(dependent(parent.id, uuid.uuid4()))
    assert excinfo.value.field == "depends_on[1]"
    other, _ = await stores.tasks.insert(new_task(tenant="tenant-b"))
    with pytest.raises(InvalidArgument):
        await stores.tasks.insert(dependent(other.id))  # another tenant's task is no task
