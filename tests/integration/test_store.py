"""The PostgreSQL stores: guarded transitions, fenced completions, concurrent claims."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from taskscheduler.adapters.postgres.attempt_store import PostgresAttemptStore, connection_pool
from taskscheduler.adapters.postgres.due_tasks import PostgresDueTasks
from taskscheduler.adapters.postgres.engine import make_async_engine, make_sync_engine
from taskscheduler.adapters.postgres.listener import StatusListener
from taskscheduler.adapters.postgres.task_repository import PostgresTaskRepository
from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.model import NewTask, RetryPolicy, StatusEvent, TaskFilter
from taskscheduler.core.model import TaskStatus as S
from taskscheduler.core.ports import AttemptError, ClaimedAttempt
from taskscheduler.settings import Settings
from tests.helpers import wait_until

ERROR = AttemptError("builtins.ValueError", "boom", "Traceback ...")
LEASE = timedelta(seconds=30)
T = "tenant-a"


def new_task(status: S = S.PENDING, run_at: datetime | None = None, **kw: Any) -> NewTask:
    return NewTask(
        id=uuid.uuid4(),
        tenant=kw.pop("tenant", T),
        kind="demo.echo",
        payload={"n": 1},
        status=status,
        retry_policy=RetryPolicy(max_attempts=kw.pop("max_attempts", 3)),
        timeout=None,
        run_at=run_at or datetime.now(UTC),
        **kw,
    )


@pytest.fixture
async def repository(settings: Settings, clean_db: None) -> Any:
    engine = make_async_engine(settings)
    yield PostgresTaskRepository.from_settings(engine, settings)
    await engine.dispose()


class DispatchedAttemptStore(PostgresAttemptStore):
    """Claims as a worker does with a message the dispatcher published: the task was let
    through its queue first."""

    def __init__(self, settings: Settings, engine: sa.Engine) -> None:
        super().__init__(connection_pool(settings, size=10))
        self.engine = engine

    def claim(self, task_id: uuid.UUID, worker: str, lease: timedelta) -> ClaimedAttempt | None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE tasks SET dispatched_at = now() WHERE id = :id AND status = 'PENDING'"
                ),
                {"id": task_id},
            )
        return super().claim(task_id, worker, lease)


@pytest.fixture
def attempts(settings: Settings) -> Iterator[PostgresAttemptStore]:
    engine = make_sync_engine(settings, pool_size=10)
    store = DispatchedAttemptStore(settings, engine)
    yield store
    store.close()
    engine.dispose()


async def test_a_task_not_dispatched_is_not_claimed(
    repository: PostgresTaskRepository, settings: Settings
) -> None:
    """A message of a task its queue holds back (paused, limited) runs nothing."""
    task, _ = await repository.insert(new_task())
    store = PostgresAttemptStore.from_settings(settings)
    try:
        assert store.claim(task.id, "w1", LEASE) is None
    finally:
        store.close()


async def test_insert_and_get_round_trip(repository: PostgresTaskRepository) -> None:
    new = new_task()
    stored, created = await repository.insert(new)
    assert created
    assert (stored.id, stored.status, stored.attempt, stored.payload) == (
        new.id,
        S.PENDING,
        0,
        {"n": 1},
    )
    assert await repository.get(T, new.id) == stored
    assert await repository.get(T, uuid.uuid4()) is None


async def test_claim_then_succeed_records_the_attempt(
    repository: PostgresTaskRepository, attempts: PostgresAttemptStore
) -> None:
    task, _ = await repository.insert(new_task())
    claimed = attempts.claim(task.id, "w1", LEASE)
    assert claimed is not None and claimed.attempt == 1
    assert attempts.claim(task.id, "w2", LEASE) is None  # a second delivery does nothing
    assert attempts.succeed(task.id, 1, {"ok": True})
    done = await repository.get(T, task.id)
    assert done is not None
    assert (done.status, done.result, done.attempt) == (S.SUCCESS, {"ok": True}, 1)
    assert done.finish_time is not None and done.start_time is not None
    [attempt] = done.attempts
    assert (attempt.number, attempt.status, attempt.worker) == (1, S.SUCCESS, "w1")
    assert attempt.finish_time == done.finish_time


async def test_completions_are_fenced_by_status_and_attempt(
    repository: PostgresTaskRepository, attempts: PostgresAttemptStore
) -> None:
    task, _ = await repository.insert(new_task())
    assert not attempts.succeed(task.id, 1, None)  # not RUNNING yet
    attempts.claim(task.id, "w1", LEASE)
    assert not attempts.succeed(task.id, 2, None)  # another attempt's completion
    assert attempts.fail(task.id, 1, ERROR, None)
    assert not attempts.succeed(task.id, 1, None)  # terminal: never changes again
    failed = await repository.get(T, task.id)
    assert failed is not None
    assert failed.status is S.FAILED
    assert failed.error == "builtins.ValueError: boom"
    assert failed.attempts[0].traceback == "Traceback ..."


async def test_a_lease_still_held_is_not_recorded_as_lost(
    repository: PostgresTaskRepository, attempts: PostgresAttemptStore
) -> None:
    task, _ = await repository.insert(new_task())
    attempts.claim(task.id, "w1", LEASE)
    assert not attempts.fail(task.id, 1, ERROR, None, only_if_lease_expired=True)
    running = await repository.get(T, task.id)
    assert running is not None and running.status is S.RUNNING
    attempts.claim(task.id, "w1", LEASE)  # nothing: still RUNNING
    # A lease renewed to end at once has ended by the next statement (each reads the database's
    # clock anew; a lease of 1 ms could still hold when the next statement came within it).
    assert attempts.renew(task.id, 1, timedelta(0)).held
    assert attempts.fail(task.id, 1, ERROR, None, only_if_lease_expired=True)


async def test_a_failure_with_attempts_left_waits_for_its_retry_time(
    repository: PostgresTaskRepository, attempts: PostgresAttemptStore, settings: Settings
) -> None:
    task, _ = await repository.insert(new_task())
    attempts.claim(task.id, "w1", LEASE)
    attempts.fail(task.id, 1, ERROR, timedelta(hours=1))
    retrying = await repository.get(T, task.id)
    assert retrying is not None
    assert (retrying.status, retrying.finish_time) == (S.RETRYING, None)
    # Due an hour after the failure by the database's clock (the one the dispatchers use), not
    # by the worker's: exactly, since both come from the same statement's now().
    failed_at = retrying.attempts[0].finish_time
    assert failed_at is not None and retrying.run_at == failed_at + timedelta(hours=1)
    engine = make_async_engine(settings)
    try:
        assert await PostgresDueTasks.from_settings(engine, settings).promote_due(10) == 0
    finally:
        await engine.dispose()


async def test_due_tasks_are_promoted_once(
    repository: PostgresTaskRepository, settings: Settings
) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    due, _ = await repository.insert(new_task(S.SCHEDULED, run_at=past))
    await repository.insert(new_task(S.SCHEDULED, run_at=past + timedelta(hours=2)))
    engine = make_async_engine(settings)
    try:
        store = PostgresDueTasks.from_settings(engine, settings)
        assert await store.promote_due(10) == 1
        assert await store.promote_due(10) == 0
    finally:
        await engine.dispose()
    promoted = await repository.get(T, due.id)
    assert promoted is not None and promoted.status is S.PENDING


def claim_concurrently(
    attempts: PostgresAttemptStore, task_id: uuid.UUID, workers: int
) -> list[object]:
    barrier = threading.Barrier(workers)
    results: list[object] = []

    def claim(name: str) -> None:
        barrier.wait()  # all threads send their claim at the same moment
        results.append(attempts.claim(task_id, name, LEASE))

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


async def test_two_workers_claiming_one_task_exactly_one_wins(
    repository: PostgresTaskRepository, attempts: PostgresAttemptStore
) -> None:
    for _ in range(20):
        task, _ = await repository.insert(new_task())
        results = claim_concurrently(attempts, task.id, workers=4)
        assert sum(result is not None for result in results) == 1
        stored = await repository.get(T, task.id)
        assert stored is not None and len(stored.attempts) == 1


async def test_cancel_waiting_and_running_tasks(
    repository: PostgresTaskRepository, attempts: PostgresAttemptStore
) -> None:
    waiting, _ = await repository.insert(new_task())
    cancelled = await repository.cancel(T, waiting.id)
    assert cancelled is not None and cancelled.status is S.CANCELLED
    assert attempts.claim(waiting.id, "w1", LEASE) is None  # a late message runs nothing
    assert await repository.cancel(T, waiting.id) is None  # terminal: unchanged

    running, _ = await repository.insert(new_task())
    attempts.claim(running.id, "w1", LEASE)
    asked = await repository.cancel(T, running.id)
    assert asked is not None and (asked.status, asked.cancel_requested) == (S.RUNNING, True)
    attempts.succeed(running.id, 1, {"late": True})
    stopped = await repository.get(T, running.id)
    assert stopped is not None
    assert (stopped.status, stopped.result) == (S.CANCELLED, None)


async def test_every_status_change_is_notified_in_commit_order(
    repository: PostgresTaskRepository, attempts: PostgresAttemptStore, settings: Settings
) -> None:
    with psycopg.connect(settings.libpq_url, autocommit=True) as listener:
        listener.execute("LISTEN task_status")
        task, _ = await repository.insert(new_task())
        attempts.claim(task.id, "w1", LEASE)
        attempts.succeed(task.id, 1, None)
        seen = [n.payload for n in listener.notifies(timeout=2, stop_after=3)]
    statuses = [p.split('"status" : "')[1].split('"')[0] for p in seen]
    assert statuses == ["PENDING", "RUNNING", "SUCCESS"]


async def test_a_stream_only_listener_delivers_to_each_subscription_in_turn(
    repository: PostgresTaskRepository, attempts: PostgresAttemptStore, settings: Settings
) -> None:
    """A process without observers (the api) LISTENs only while someone subscribes: each
    subscription, the first and one after the last has left, sees the changes committed once
    it has begun."""
    listener = StatusListener(settings.libpq_url)
    await listener.start()
    try:
        first, _ = await repository.insert(new_task())
        async with listener.subscribe(first.id) as events:
            attempts.claim(first.id, "w1", LEASE)
            running = await asyncio.wait_for(anext(events), 5)
        assert isinstance(running, StatusEvent) and running.status is S.RUNNING
        attempts.succeed(first.id, 1, None)  # nobody subscribes: the listener stops listening
        await wait_until(lambda: not listener.listening_to_status, within=5)
        second, _ = await repository.insert(new_task())
        async with listener.subscribe(second.id) as events:
            attempts.claim(second.id, "w1", LEASE)
            again = await asyncio.wait_for(anext(events), 5)
        assert isinstance(again, StatusEvent)
        assert (again.task_id, again.status) == (second.id, S.RUNNING)
    finally:
        await listener.stop()


async def every_page(repository: PostgresTaskRepository, size: int) -> list[uuid.UUID]:
    """The ids of every task listed, page after page of `size`."""
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await repository.list(T, TaskFilter(), size, cursor)
        seen += [task.id for task in page.tasks]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


async def test_list_pages_with_keyset_tokens_and_filters(
    repository: PostgresTaskRepository,
) -> None:
    ids = [(await repository.insert(new_task()))[0].id for _ in range(7)]
    assert await every_page(repository, 3) == list(reversed(ids))  # newest first, each exactly once
    only_failed = await repository.list(T, TaskFilter(statuses=frozenset({S.FAILED})), 10, None)
    assert only_failed.tasks == []


async def test_tasks_in_flight_are_listed_and_counted_with_the_settled_ones(
    repository: PostgresTaskRepository, attempts: PostgresAttemptStore
) -> None:
    """The listing indexes hold settled tasks only: those let through or running are read
    beside them, in one newest-first order, page after page."""
    ids = [(await repository.insert(new_task()))[0].id for _ in range(7)]
    for task_id in (ids[1], ids[4]):
        assert attempts.claim(task_id, "w1", LEASE) is not None
    assert await every_page(repository, 2) == list(reversed(ids))
    running = await repository.list(T, TaskFilter(statuses=frozenset({S.RUNNING})), 10, None)
    assert [task.id for task in running.tasks] == [ids[4], ids[1]]
    live = TaskFilter(statuses=frozenset({S.RUNNING, S.PENDING}))
    assert len((await repository.list(T, live, 10, None)).tasks) == 7
    counts = await repository.count(T, timedelta(hours=1))
    assert (counts[S.RUNNING], counts[S.PENDING]) == (2, 5)


async def test_idempotent_insert_returns_the_first_task(repository: PostgresTaskRepository) -> None:
    first, created = await repository.insert(new_task(request_id="key-1", request_fingerprint="a"))
    again, created_again = await repository.insert(
        new_task(request_id="key-1", request_fingerprint="a")
    )
    assert created and not created_again
    assert again.id == first.id


def test_the_migrated_schema_matches_the_metadata(settings: Settings) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from taskscheduler.adapters.postgres.schema import metadata

    engine = sa.create_engine(settings.sqlalchemy_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


async def test_an_idempotency_key_is_released_after_its_window(
    repository: PostgresTaskRepository, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    first, _ = await repository.insert(new_task(request_id="key-2", request_fingerprint="a"))
    db.execute("UPDATE tasks SET created_at = now() - interval '2 days' WHERE id = %s", (first.id,))
    second, created = await repository.insert(new_task(request_id="key-2", request_fingerprint="b"))
    assert created and second.id != first.id
    old = await repository.get(T, first.id)
    assert old is not None and old.request_id == ""


async def test_unclaimed_pending_tasks_are_published_again_with_doubling_waits(
    repository: PostgresTaskRepository,
    settings: Settings,
    db: psycopg.Connection[tuple[object, ...]],
) -> None:
    task, _ = await repository.insert(new_task())
    db.execute(
        "INSERT INTO queues (tenant, name) VALUES (%s, 'default') ON CONFLICT DO NOTHING", (T,)
    )
    engine = make_async_engine(settings)
    try:
        due = PostgresDueTasks.from_settings(engine, settings)
        assert await due.republish_lost(10) == []  # ready, not dispatched: nothing published
        assert [m.task_id for m in (await due.dispatch_ready(10)).messages] == [task.id]
        assert await due.republish_lost(10) == []  # not yet: its message may still be queued
        waits = []
        for _ in range(3):
            db.execute("UPDATE tasks SET republish_at = now() WHERE id = %s", (task.id,))
            [again] = await due.republish_lost(10)
            assert (again.task_id, again.attempt) == (task.id, 1)
            row = db.execute(
                "SELECT extract(epoch FROM republish_at - now()) FROM tasks WHERE id = %s",
                (task.id,),
            ).fetchone()
            assert row is not None
            waits.append(round(float(row[0])))  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    base = settings.republish_after_seconds
    assert waits == [2 * base, 4 * base, 8 * base]


async def test_finished_tasks_past_retention_are_deleted_in_small_batches(
    repository: PostgresTaskRepository,
    attempts: PostgresAttemptStore,
    settings: Settings,
    db: psycopg.Connection[tuple[object, ...]],
) -> None:
    old = []
    for _ in range(3):
        task, _ = await repository.insert(new_task())
        attempts.claim(task.id, "w1", LEASE)
        attempts.succeed(task.id, 1, None)
        old.append(task.id)
    recent, _ = await repository.insert(new_task())
    attempts.claim(recent.id, "w1", LEASE)
    attempts.succeed(recent.id, 1, None)
    live, _ = await repository.insert(new_task())
    db.execute(
        "UPDATE tasks SET finished_at = now() - interval '40 days', "
        "created_at = now() - interval '41 days' WHERE id = ANY(%s)",
        (old,),
    )
    db.execute("UPDATE tasks SET created_at = now() - interval '41 days' WHERE id = %s", (live.id,))
    engine = make_async_engine(settings)
    try:
        due = PostgresDueTasks.from_settings(engine, settings)
        assert await due.delete_finished(timedelta(days=30), limit=2) == 2
        assert await due.delete_finished(timedelta(days=30), limit=2) == 1
        assert await due.delete_finished(timedelta(days=30), limit=2) == 0
    finally:
        await engine.dispose()
    remaining = {row[0] for row in db.execute("SELECT id FROM tasks").fetchall()}
    assert remaining == {recent.id, live.id}
    orphans = db.execute("SELECT count(*) FROM task_attempts WHERE task_id = ANY(%s)", (old,))
    assert orphans.fetchone() == (0,)


async def test_finished_workflows_past_retention_are_deleted_with_the_tasks(
    settings: Settings, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    ids = {name: uuid.uuid4() for name in ("old", "recent", "running")}
    for name, finished in (("old", "40 days"), ("recent", "1 day"), ("running", None)):
        db.execute(
            "INSERT INTO workflows (id, tenant, on_failure, steps, unfinished, status, "
            "finished_at) VALUES (%s, 't', 'CONTINUE', 1, %s, %s, now() - %s::interval)",
            (ids[name], 1 if finished is None else 0, "RUNNING" if finished is None else
             "SUCCESS", finished),
        )  # fmt: skip
    engine = make_async_engine(settings)
    try:
        await PostgresDueTasks.from_settings(engine, settings).delete_finished(
            timedelta(days=30), limit=10
        )
    finally:
        await engine.dispose()
    remaining = {row[0] for row in db.execute("SELECT id FROM workflows").fetchall()}
    assert remaining == {ids["recent"], ids["running"]}


async def test_concurrent_inserts_share_commits_and_keep_their_own_outcomes(
    repository: PostgresTaskRepository, db: psycopg.Connection[Any]
) -> None:
    """A group commit stores calls of several tenants together; a call naming a missing queue
    fails alone, a reused key answers with its first task, every other call is stored once."""
    keyed = new_task(request_id="same-key", request_fingerprint="f")
    again = new_task(request_id="same-key", request_fingerprint="f")
    lost = new_task(queue="no-such-queue")
    plain = [new_task(tenant=f"tenant-{n % 3}") for n in range(30)]
    outcomes = await asyncio.gather(
        *(repository.insert(new) for new in [keyed, *plain, lost, again]),
        return_exceptions=True,
    )
    first, *stored, missing, second = outcomes
    assert isinstance(missing, InvalidArgument) and missing.field == "queue"
    assert isinstance(first, tuple) and isinstance(second, tuple)
    assert first[0].id == second[0].id and [first[1], second[1]] == [True, False]
    assert all(isinstance(o, tuple) and o[1] for o in stored)
    assert {o[0].id for o in stored if isinstance(o, tuple)} == {new.id for new in plain}
    [(count,)] = db.execute("SELECT count(*) FROM tasks").fetchall()
    assert count == 31
