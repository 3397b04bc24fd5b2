"""Real Celery workers executing tasks scheduled through the gRPC api, with status streams."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from taskscheduler.adapters.broker import (
    Delivery,
    celery_queue_name,
    make_celery_app,
    make_publisher,
    send_execute,
)
from taskscheduler.core.ports import TaskMessage
from taskscheduler.settings import Settings
from taskscheduler.v1 import queue_pb2, task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.helpers import follow, get, request, schedule, wait_until
from tests.servers import ServiceProcess

S = task_pb2

pytestmark = pytest.mark.usefixtures("worker", "dispatcher")


async def test_stream_sees_scheduled_pending_running_success_in_order(
    stub: TaskServiceStub,
) -> None:
    # A future run_at keeps the task waiting until the stream is open, so every change is live.
    message = request("demo.sleep", {"seconds": 0.2}, run_in=timedelta(seconds=2))
    task = await schedule(stub, message)
    events = await follow(stub, task.id)
    assert [event.status for event in events] == [
        S.TASK_STATUS_SCHEDULED,
        S.TASK_STATUS_PENDING,
        S.TASK_STATUS_RUNNING,
        S.TASK_STATUS_SUCCESS,
    ]
    run_at = message.run_at.ToDatetime()
    assert events[1].event_time.ToDatetime() >= run_at  # SCHEDULED until its run_at
    final = events[-1].task
    assert final.result.struct_value["slept"] == 0.2
    assert [a.status for a in final.attempts] == [S.TASK_STATUS_SUCCESS]
    assert final.attempts[0].worker
    assert final.start_time.ToDatetime() >= run_at  # never before run_at


async def test_stream_of_a_finished_task_sends_one_message(stub: TaskServiceStub) -> None:
    task = await schedule(stub, request("demo.echo", {"hello": "world"}))
    await follow(stub, task.id)
    events = await follow(stub, task.id)
    assert [event.status for event in events] == [S.TASK_STATUS_SUCCESS]
    assert events[0].task.result.struct_value["hello"] == "world"


async def test_duplicate_deliveries_run_the_handler_once(
    stub: TaskServiceStub,
    settings: Settings,
    worker: ServiceProcess,
    db: psycopg.Connection[tuple[object, ...]],
) -> None:
    task = await schedule(stub, request("demo.sleep", {"seconds": 0.3}))
    publisher = make_publisher(settings)
    message = TaskMessage(uuid.UUID(task.id), 1, None, "default")
    await publisher.publish_many([message] * 5)
    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_SUCCESS
    # Every one of the six deliveries is consumed; exactly one ran the handler.
    await wait_until(lambda: worker.log().count(f"task {task.id} attempt 1: skipped") == 5)
    assert worker.log().count(f"task {task.id} attempt 1: succeeded") == 1
    rows = db.execute(
        "SELECT count(*) FROM task_attempts WHERE task_id = %s", (task.id,)
    ).fetchall()
    assert rows == [(1,)]


async def test_a_cancelled_pending_task_never_runs_when_its_message_comes_later(
    stub: TaskServiceStub,
    settings: Settings,
    worker: ServiceProcess,
    db: psycopg.Connection[tuple[object, ...]],
    tmp_path: Path,
) -> None:
    queue = f"held-{uuid.uuid4().hex[:8]}"
    await stub.CreateQueue(pb.CreateQueueRequest(queue=queue_pb2.Queue(name=queue)))
    await stub.PauseQueue(pb.PauseQueueRequest(name=queue))
    ran = tmp_path / "ran"
    message = request("sample.touch", {"path": str(ran)})
    message.queue = queue
    task = await schedule(stub, message)
    assert task.status == S.TASK_STATUS_PENDING  # its paused queue holds it back
    # As if its queue had let it through just before the pause: its message is on its way, and
    # only the cancel stands between that message and a run.
    db.execute("UPDATE tasks SET dispatched_at = now() WHERE id = %s", (task.id,))
    cancelled = (await stub.CancelTask(pb.CancelTaskRequest(task_id=task.id))).task
    assert cancelled.status == S.TASK_STATUS_CANCELLED
    await make_publisher(settings).publish_many([TaskMessage(uuid.UUID(task.id), 1, None, queue)])
    delivered = f"task {task.id} attempt 1: "
    await wait_until(lambda: delivered in worker.log())
    assert delivered + "skipped" in worker.log()
    final = await get(stub, task.id)
    assert final.status == S.TASK_STATUS_CANCELLED
    assert final.attempt == 0 and not final.attempts
    assert not ran.exists()  # the handler was never called


async def test_many_concurrent_streams_all_reach_the_end(stub: TaskServiceStub) -> None:
    tasks = [await schedule(stub, request("demo.sleep", {"seconds": 0.1})) for _ in range(20)]
    results = await asyncio.gather(*(follow(stub, task.id) for task in tasks))
    assert all(events[-1].status == S.TASK_STATUS_SUCCESS for events in results)


async def _dispatched_without_message(
    stub: TaskServiceStub,
    db: psycopg.Connection[tuple[object, ...]],
    kinds: list[pb.ScheduleTaskRequest],
) -> list[task_pb2.Task]:
    """Tasks in a paused queue, marked as let through by their queue (as just before a pause),
    so that the test alone publishes their messages."""
    queue = f"held-{uuid.uuid4().hex[:8]}"
    await stub.CreateQueue(pb.CreateQueueRequest(queue=queue_pb2.Queue(name=queue)))
    await stub.PauseQueue(pb.PauseQueueRequest(name=queue))
    tasks = []
    for message in kinds:
        message.queue = queue
        tasks.append(await schedule(stub, message))
    db.execute(
        "UPDATE tasks SET dispatched_at = now() WHERE id = ANY(%s)",
        ([uuid.UUID(task.id) for task in tasks],),
    )
    return tasks


def _send_one_message(settings: Settings, tasks: list[task_pb2.Task]) -> None:
    app = make_celery_app(settings)
    deliveries = [Delivery(task.id, 1) for task in tasks]
    send_execute(app, celery_queue_name(settings, tasks[0].queue), deliveries, time_limit=None)


async def test_one_message_runs_each_of_its_tasks_once_in_order(
    stub: TaskServiceStub, settings: Settings, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    tasks = await _dispatched_without_message(
        stub, db, [request("demo.echo", {"n": n}) for n in range(5)]
    )
    _send_one_message(settings, tasks)
    finals = [(await follow(stub, task.id))[-1].task for task in tasks]
    assert [task.status for task in finals] == [S.TASK_STATUS_SUCCESS] * 5
    assert [task.result.struct_value["n"] for task in finals] == [0, 1, 2, 3, 4]
    assert all(len(task.attempts) == 1 for task in finals)
    workers = {task.attempts[0].worker for task in finals}
    assert len(workers) == 1, "one delivery ran them all, in one pool process"
    starts = [task.start_time.ToDatetime() for task in finals]
    assert starts == sorted(starts)


async def test_the_ids_behind_a_slow_task_go_to_another_worker_after_the_budget(
    stub: TaskServiceStub, settings: Settings, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    """The message time budget is 1 s: the echoes do not wait 3 s for the sleeper."""
    slow = request("demo.sleep", {"seconds": 3})
    tasks = await _dispatched_without_message(
        stub, db, [slow, request("demo.echo", {}), request("demo.echo", {})]
    )
    _send_one_message(settings, tasks)
    finals = [(await follow(stub, task.id))[-1].task for task in tasks]
    assert [task.status for task in finals] == [S.TASK_STATUS_SUCCESS] * 3
    assert all(len(task.attempts) == 1 for task in finals)
    sleeper, *echoes = finals
    for echo in echoes:
        assert echo.finish_time.ToDatetime() < sleeper.finish_time.ToDatetime()
        assert echo.attempts[0].worker != sleeper.attempts[0].worker
