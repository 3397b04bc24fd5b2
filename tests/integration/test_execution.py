"""Real Celery workers executing tasks scheduled through the gRPC api, with status streams."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from taskscheduler.adapters.broker import make_publisher
from taskscheduler.settings import Settings
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.servers import ServiceProcess

S = task_pb2
TERMINAL = {S.TASK_STATUS_SUCCESS, S.TASK_STATUS_FAILED, S.TASK_STATUS_CANCELLED}

pytestmark = pytest.mark.usefixtures("worker", "dispatcher")


async def wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(20):
        while not condition():  # noqa: ASYNC110 - polls a log file, nothing to await
            await asyncio.sleep(0.05)


async def schedule(stub: TaskServiceStub, kind: str, **payload: Any) -> task_pb2.Task:
    request = pb.ScheduleTaskRequest(kind=kind)
    request.payload.update(payload)
    response: pb.ScheduleTaskResponse = await stub.ScheduleTask(request)
    return response.task


async def follow(stub: TaskServiceStub, task_id: str) -> list[pb.StreamStatusResponse]:
    events = []
    async for event in stub.StreamStatus(pb.StreamStatusRequest(task_id=task_id), timeout=60):
        events.append(event)
    return events


async def test_stream_sees_pending_running_success_in_order(stub: TaskServiceStub) -> None:
    # A future run_at keeps the task waiting until the stream is open, so every change is live.
    request = pb.ScheduleTaskRequest(kind="demo.sleep")
    request.payload.update({"seconds": 0.2})
    request.run_at.GetCurrentTime()
    request.run_at.nanos = 0
    request.run_at.seconds += 2
    task = (await stub.ScheduleTask(request)).task
    events = await follow(stub, task.id)
    statuses = [event.status for event in events]
    assert statuses == [
        S.TASK_STATUS_SCHEDULED,
        S.TASK_STATUS_PENDING,
        S.TASK_STATUS_RUNNING,
        S.TASK_STATUS_SUCCESS,
    ]
    final = events[-1].task
    assert final.result.struct_value["slept"] == 0.2
    assert [a.status for a in final.attempts] == [S.TASK_STATUS_SUCCESS]
    assert final.attempts[0].worker
    assert final.start_time.ToDatetime() >= request.run_at.ToDatetime()


async def test_stream_of_a_finished_task_sends_one_message(stub: TaskServiceStub) -> None:
    task = await schedule(stub, "demo.echo", hello="world")
    await follow(stub, task.id)
    events = await follow(stub, task.id)
    assert [event.status for event in events] == [S.TASK_STATUS_SUCCESS]
    assert events[0].task.result.struct_value["hello"] == "world"


async def test_a_failing_task_is_retried_then_succeeds(stub: TaskServiceStub) -> None:
    request = pb.ScheduleTaskRequest(
        kind="demo.fail",
        retry_policy=task_pb2.RetryPolicy(max_attempts=3, backoff_multiplier=1),
    )
    request.retry_policy.initial_backoff.FromMilliseconds(100)
    request.retry_policy.jitter = False
    request.payload.update({"fail_times": 2})
    task = (await stub.ScheduleTask(request)).task
    events = await follow(stub, task.id)
    final = events[-1].task
    assert final.status == S.TASK_STATUS_SUCCESS and final.attempt == 3
    assert [a.status for a in final.attempts] == [
        S.TASK_STATUS_FAILED,
        S.TASK_STATUS_FAILED,
        S.TASK_STATUS_SUCCESS,
    ]
    assert final.attempts[0].error_type == "taskscheduler.handlers.demo.DemoFailure"
    assert "Traceback" in final.attempts[0].traceback
    assert S.TASK_STATUS_RETRYING in [event.status for event in events]


async def test_a_task_that_always_fails_ends_failed_after_max_attempts(
    stub: TaskServiceStub,
) -> None:
    request = pb.ScheduleTaskRequest(
        kind="demo.fail", retry_policy=task_pb2.RetryPolicy(max_attempts=2)
    )
    request.retry_policy.initial_backoff.FromMilliseconds(50)
    task = (await stub.ScheduleTask(request)).task
    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_FAILED
    assert len(final.attempts) == 2
    assert final.error.startswith("taskscheduler.handlers.demo.DemoFailure: demo failure")


async def test_duplicate_deliveries_run_the_handler_once(
    stub: TaskServiceStub,
    settings: Settings,
    worker: ServiceProcess,
    db: psycopg.Connection[tuple[object, ...]],
) -> None:
    task = await schedule(stub, "demo.sleep", seconds=0.3)
    publisher = make_publisher(settings)
    for _ in range(5):
        await publisher.publish(uuid.UUID(task.id), 1, None)
    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_SUCCESS
    # Every one of the six deliveries is consumed; exactly one ran the handler.
    await wait_until(lambda: worker.log().count(f"task {task.id} attempt 1: skipped") == 5)
    assert worker.log().count(f"task {task.id} attempt 1: succeeded") == 1
    rows = db.execute(
        "SELECT count(*) FROM task_attempts WHERE task_id = %s", (task.id,)
    ).fetchall()
    assert rows == [(1,)]


async def test_many_concurrent_streams_all_reach_the_end(stub: TaskServiceStub) -> None:
    tasks = [await schedule(stub, "demo.sleep", seconds=0.1) for _ in range(20)]
    results = await asyncio.gather(*(follow(stub, task.id) for task in tasks))
    assert all(events[-1].status == S.TASK_STATUS_SUCCESS for events in results)
