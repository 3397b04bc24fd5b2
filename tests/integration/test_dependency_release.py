"""The release of a dependent when its dependencies end at the same instant on two workers (the
fan-in race), against the real PostgreSQL store: the release happens in the transaction of the
last success, under the dependent's row lock, so that exactly one of the two releases it. And
the steps a handler spawns: stored with its success, once, and never with a cancelled end."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from taskscheduler.adapters.postgres.attempt_store import PostgresAttemptStore, connection_pool
from taskscheduler.core.model import NewTask, RetryPolicy, TaskStatus
from taskscheduler.core.ports import AttemptError
from taskscheduler.settings import Settings
from taskscheduler.v1 import queue_pb2, schedule_pb2, workflow_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.conftest import TENANT

ROUNDS = 25
S = TaskStatus
LEASE_SECONDS = 30


@pytest.fixture
def store(settings: Settings) -> Iterator[PostgresAttemptStore]:
    store = PostgresAttemptStore(connection_pool(settings, size=4))
    yield store
    store.close()


def _step(name: str, depends_on: tuple[str, ...] = ()) -> workflow_pb2.WorkflowStepSpec:
    return workflow_pb2.WorkflowStepSpec(
        name=name, task=schedule_pb2.TaskTemplate(kind="demo.echo"), depends_on=list(depends_on)
    )


async def _diamond_tail(stub: TaskServiceStub) -> dict[str, str]:
    """Two parents and their join; task ids by step name."""
    steps = [_step("left"), _step("right"), _step("join", ("left", "right"))]
    workflow = (await stub.CreateWorkflow(pb.CreateWorkflowRequest(steps=steps))).workflow
    return {step.name: step.task_id for step in workflow.steps}


def _end_together(
    store: PostgresAttemptStore,
    db: psycopg.Connection[tuple[object, ...]],
    ids: dict[str, str],
    fail_right: bool,
) -> None:
    """Lets both parents through (as the dispatcher would), claims them, then ends them from
    two threads released by one barrier."""
    lease = timedelta(seconds=LEASE_SECONDS)
    parents = [uuid.UUID(ids["left"]), uuid.UUID(ids["right"])]
    db.execute("UPDATE tasks SET dispatched_at = now() WHERE id = ANY(%s)", (parents,))
    for worker, parent in zip(("w1", "w2"), parents, strict=True):
        assert store.claim(parent, worker, lease) is not None
    barrier = threading.Barrier(2)

    def end(parent: uuid.UUID, fail: bool) -> None:
        barrier.wait()
        if fail:
            store.fail(parent, 1, AttemptError("builtins.RuntimeError", "boom"), None)
        else:
            store.succeed(parent, 1, {"ok": True})

    threads = [
        threading.Thread(target=end, args=(parents[0], False)),
        threading.Thread(target=end, args=(parents[1], fail_right)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.usefixtures("clean_db")
async def test_two_parents_succeeding_at_once_release_their_join_exactly_once(
    stub: TaskServiceStub, store: PostgresAttemptStore, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    for _ in range(ROUNDS):
        ids = await _diamond_tail(stub)
        _end_together(store, db, ids, fail_right=False)
        row = db.execute(
            "SELECT status, blocked_on, version FROM tasks WHERE id = %s", (ids["join"],)
        ).fetchone()
        # version 2: inserted (1), then one status change, BLOCKED -> PENDING.
        assert row == ("PENDING", 0, 2)


@pytest.mark.usefixtures("clean_db")
async def test_a_success_and_a_failure_at_once_cancel_the_join(
    stub: TaskServiceStub, store: PostgresAttemptStore, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    for _ in range(ROUNDS):
        ids = await _diamond_tail(stub)
        _end_together(store, db, ids, fail_right=True)
        row = db.execute(
            "SELECT status, version, attempt FROM tasks WHERE id = %s", (ids["join"],)
        ).fetchone()
        assert row == ("CANCELLED", 2, 0)
    statuses = db.execute("SELECT DISTINCT status FROM workflows").fetchall()
    assert statuses == [("FAILED",)]


def _spawned(workflow_id: uuid.UUID, names: list[str]) -> tuple[NewTask, ...]:
    now = datetime.now(UTC)
    return tuple(
        NewTask(
            id=uuid.uuid4(),
            tenant=TENANT,
            kind="demo.echo",
            payload={},
            status=S.PENDING,
            retry_policy=RetryPolicy(),
            timeout=None,
            run_at=now,
            workflow_id=workflow_id,
            step_name=name,
        )
        for name in names
    )


@pytest.mark.usefixtures("clean_db")
async def test_a_success_stores_its_spawned_steps_once_and_a_cancelled_one_none(
    stub: TaskServiceStub, store: PostgresAttemptStore, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    workflow = await stub.CreateWorkflow(pb.CreateWorkflowRequest(steps=[_step("a"), _step("b")]))
    a, b = (uuid.UUID(s.task_id) for s in workflow.workflow.steps)
    workflow_id = uuid.UUID(workflow.workflow.id)
    db.execute("UPDATE tasks SET dispatched_at = now() WHERE id = ANY(%s)", ([a, b],))
    lease = timedelta(seconds=LEASE_SECONDS)
    assert store.claim(a, "w1", lease) is not None and store.claim(b, "w2", lease) is not None
    children = _spawned(workflow_id, ["a/x", "a/y"])
    assert store.succeed(a, 1, {"ok": True}, children)
    assert not store.succeed(a, 1, {"ok": True}, _spawned(workflow_id, ["a/z"]))  # fenced
    db.execute("UPDATE tasks SET cancel_requested_at = now() WHERE id = %s", (b,))
    assert store.succeed(b, 1, None, _spawned(workflow_id, ["b/x"]))  # ends CANCELLED
    names = db.execute(
        "SELECT step_name, status FROM tasks WHERE workflow_id = %s ORDER BY step_name",
        (workflow_id,),
    ).fetchall()
    assert names == [
        ("a", "SUCCESS"),
        ("a/x", "PENDING"),
        ("a/y", "PENDING"),
        ("b", "CANCELLED"),
    ]
    counters = db.execute(
        "SELECT steps, unfinished, status FROM workflows WHERE id = %s", (workflow_id,)
    ).fetchone()
    assert counters == (4, 2, "RUNNING")


async def _chain(stub: TaskServiceStub, queue: str = "") -> tuple[uuid.UUID, uuid.UUID]:
    """A two-step chain in `queue`: (first, second) task ids."""
    template = schedule_pb2.TaskTemplate(kind="demo.echo", queue=queue)
    steps = [
        workflow_pb2.WorkflowStepSpec(name="first", task=template),
        workflow_pb2.WorkflowStepSpec(name="second", task=template, depends_on=["first"]),
    ]
    workflow = (await stub.CreateWorkflow(pb.CreateWorkflowRequest(steps=steps))).workflow
    first, second = (uuid.UUID(step.task_id) for step in workflow.steps)
    return first, second


def _run_first(
    store: PostgresAttemptStore, db: psycopg.Connection[tuple[object, ...]], first: uuid.UUID
) -> None:
    db.execute("UPDATE tasks SET dispatched_at = now() WHERE id = %s", (first,))
    assert store.claim(first, "w1", timedelta(seconds=LEASE_SECONDS)) is not None
    assert store.succeed(first, 1, {"made": "here"})


@pytest.mark.usefixtures("clean_db")
async def test_the_worker_that_ends_a_step_claims_the_dependent_it_released(
    stub: TaskServiceStub, store: PostgresAttemptStore, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    first, second = await _chain(stub)
    lease = timedelta(seconds=LEASE_SECONDS)
    _run_first(store, db, first)
    claimed = store.claim_released(first, "w1", lease)
    assert claimed is not None and claimed.task_id == second and claimed.attempt == 1
    assert claimed.dependency_results == {"first": {"made": "here"}}
    row = db.execute(
        "SELECT status, dispatched_at IS NOT NULL, worker FROM tasks WHERE id = %s", (second,)
    ).fetchone()
    assert row == ("RUNNING", True, "w1")
    assert store.claim_released(first, "w2", lease) is None  # once


@pytest.mark.usefixtures("clean_db")
async def test_a_released_dependent_is_left_to_the_dispatcher_when_its_queue_holds_it(
    stub: TaskServiceStub, store: PostgresAttemptStore, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    """A rate-limited or paused queue, a task of the queue already at the broker, a queue this
    worker does not serve: the dependent waits, ready, for the dispatcher."""
    lease = timedelta(seconds=LEASE_SECONDS)
    limited = queue_pb2.Queue(name="limited", rate_limit=queue_pb2.RateLimit(per_second=5))
    await stub.CreateQueue(pb.CreateQueueRequest(queue=limited))
    first, second = await _chain(stub, "limited")
    _run_first(store, db, first)
    assert store.claim_released(first, "w1", lease) is None
    first, second = await _chain(stub)
    ahead = (await stub.ScheduleTask(pb.ScheduleTaskRequest(kind="demo.echo"))).task
    db.execute("UPDATE tasks SET dispatched_at = now() WHERE id = %s", (ahead.id,))
    _run_first(store, db, first)
    assert store.claim_released(first, "w1", lease) is None  # it would pass `ahead`
    db.execute("UPDATE tasks SET status = 'CANCELLED' WHERE id = %s", (ahead.id,))
    assert store.claim_released(first, "w1", lease, queues=["elsewhere"]) is None
    claimed = store.claim_released(first, "w1", lease, queues=["default"])
    assert claimed is not None and claimed.task_id == second


@pytest.mark.usefixtures("clean_db")
async def test_a_claim_says_whether_a_dependent_waits_for_this_task_alone(
    stub: TaskServiceStub, store: PostgresAttemptStore, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    """A chain's step: yes (its success releases the next one, which the worker may run on
    the spot); a fan-in's parent: no (the last of them to end is not known at its claim)."""
    lease = timedelta(seconds=LEASE_SECONDS)
    first, _ = await _chain(stub)
    tail = await _diamond_tail(stub)
    parents = [first, uuid.UUID(tail["left"])]
    db.execute("UPDATE tasks SET dispatched_at = now() WHERE id = ANY(%s)", (parents,))
    chained, joined = (store.claim(parent, "w1", lease) for parent in parents)
    assert chained is not None and chained.releases_alone
    assert joined is not None and not joined.releases_alone
