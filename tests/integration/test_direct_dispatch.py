"""A task stored into a queue that holds nothing back goes from the api's commit straight to
the broker, with no dispatcher running; a queue that holds tasks back keeps them for one."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from taskscheduler.v1 import queue_pb2, task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.helpers import follow, request, schedule

S = task_pb2

# No dispatcher; and no task left by other modules ready in a queue, which new ones would wait
# behind.
pytestmark = pytest.mark.usefixtures("clean_db", "worker")


async def test_a_task_into_an_idle_queue_runs_without_a_dispatcher(stub: TaskServiceStub) -> None:
    task = await schedule(stub, request("demo.echo", {"direct": True}))
    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_SUCCESS
    assert final.result.struct_value["direct"] is True


async def test_a_batch_runs_without_a_dispatcher(stub: TaskServiceStub) -> None:
    batch = pb.BatchScheduleTasksRequest(requests=[request("demo.echo", {}) for _ in range(30)])
    tasks = (await stub.BatchScheduleTasks(batch)).tasks
    finals = [(await follow(stub, task.id))[-1].task for task in tasks]
    assert {task.status for task in finals} == {S.TASK_STATUS_SUCCESS}


@pytest.mark.parametrize(
    "limits",
    [
        queue_pb2.Queue(max_concurrent=5),
        queue_pb2.Queue(max_concurrent_per_key=1),
        queue_pb2.Queue(rate_limit=queue_pb2.RateLimit(per_second=100, burst=10)),
    ],
)
async def test_a_queue_with_limits_leaves_its_tasks_to_the_dispatcher(
    stub: TaskServiceStub, db: psycopg.Connection[Any], limits: queue_pb2.Queue
) -> None:
    name = f"limited-{uuid.uuid4().hex[:8]}"
    queue = queue_pb2.Queue(name=name)
    queue.MergeFrom(limits)
    await stub.CreateQueue(pb.CreateQueueRequest(queue=queue))
    message = request("demo.echo", {})
    message.queue = name
    task = await schedule(stub, message)
    [(dispatched,)] = db.execute(
        "SELECT dispatched_at FROM tasks WHERE id = %s", (task.id,)
    ).fetchall()
    assert dispatched is None


async def test_a_paused_queue_and_one_with_ready_tasks_keep_new_tasks_back(
    stub: TaskServiceStub, db: psycopg.Connection[Any]
) -> None:
    name = f"held-{uuid.uuid4().hex[:8]}"
    await stub.CreateQueue(pb.CreateQueueRequest(queue=queue_pb2.Queue(name=name)))
    await stub.PauseQueue(pb.PauseQueueRequest(name=name))
    first = request("demo.echo", {})
    first.queue = name
    held = await schedule(stub, first)
    await stub.ResumeQueue(pb.ResumeQueueRequest(name=name))
    # No dispatcher runs: the first task stays ready, and the next must not jump ahead of it.
    second = request("demo.echo", {})
    second.queue = name
    behind = await schedule(stub, second)
    rows = db.execute(
        "SELECT id::text, dispatched_at FROM tasks WHERE id = ANY(%s)",
        ([uuid.UUID(held.id), uuid.UUID(behind.id)],),
    ).fetchall()
    assert {task_id: at for task_id, at in rows} == {held.id: None, behind.id: None}
