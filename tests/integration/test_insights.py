"""The overviews and the filters behind them, on real workers and the real database: the dead
letters grouped by error type, tasks listed and retried by error type and by payload field,
each queue's last hour minute by minute; tenant-scoped, bad input refused naming its field."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import grpc
import pytest

from services.api.server import RunningApi
from taskscheduler.core.limits import MAX_ERROR_TYPE_LENGTH
from taskscheduler.tokens import mint_token
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests import helpers
from tests.conftest import TEST_SECRET
from tests.helpers import follow, request, schedule

pytestmark = pytest.mark.usefixtures("worker", "dispatcher")

S = task_pb2
DEMO_FAILURE = "taskscheduler.handlers.demo.DemoFailure"
NON_RETRYABLE = "taskscheduler.core.kinds.NonRetryableError"


async def run_to_the_end(stub: TaskServiceStub, message: pb.ScheduleTaskRequest) -> task_pb2.Task:
    task = await schedule(stub, message)
    events = await follow(stub, task.id)
    ended: task_pb2.Task = events[-1].task
    return ended


async def listed_ids(stub: TaskServiceStub, message: pb.ListTasksRequest) -> set[str]:
    return {task.id for task in (await stub.ListTasks(message)).tasks}


def failing(message: str, retryable: bool) -> pb.ScheduleTaskRequest:
    return request("demo.fail", {"message": message, "retryable": retryable}, max_attempts=1)


def payload_filter(fields: dict[str, Any]) -> pb.ListTasksRequest:
    message = pb.ListTasksRequest()
    message.payload_contains.update(fields)
    return message


async def test_failures_are_grouped_listed_and_retried_by_error_type(
    clean_db: None, api: RunningApi, stub: TaskServiceStub
) -> None:
    demo = [await run_to_the_end(stub, failing("demo failure", retryable=True)) for i in range(3)]
    final = [await run_to_the_end(stub, failing("acme down", retryable=False)) for _ in range(2)]
    succeeded = await run_to_the_end(stub, request("demo.echo", {"message": "acme down"}))
    assert {task.status for task in demo + final} == {S.TASK_STATUS_FAILED}
    assert succeeded.status == S.TASK_STATUS_SUCCESS

    grouped = (await stub.ListFailureGroups(pb.ListFailureGroupsRequest())).groups
    assert [(group.error_type, group.count) for group in grouped] == [
        (DEMO_FAILURE, 3),
        (NON_RETRYABLE, 2),
    ]
    latest = max(demo, key=lambda task: (task.finish_time.ToDatetime(), task.id))
    first = min(task.finish_time.ToDatetime() for task in demo)
    assert grouped[0].latest_task_id == latest.id
    assert grouped[0].latest_message == "demo failure (attempt 1)"
    assert grouped[0].first_finish_time.ToDatetime() == first
    assert grouped[0].last_finish_time.ToDatetime() == latest.finish_time.ToDatetime()
    of_kind = await stub.ListFailureGroups(pb.ListFailureGroupsRequest(kind="demo.echo"))
    assert list(of_kind.groups) == []

    by_type = pb.ListTasksRequest(error_type=NON_RETRYABLE)
    assert await listed_ids(stub, by_type) == {task.id for task in final}
    acme = payload_filter({"message": "acme down"})
    assert await listed_ids(stub, acme) == {task.id for task in [*final, succeeded]}
    acme.error_type = DEMO_FAILURE
    assert await listed_ids(stub, acme) == set()

    selector = pb.TaskSelector(statuses=[S.TASK_STATUS_FAILED], error_type=DEMO_FAILURE)
    retried = await stub.BatchRetryTasks(pb.BatchRetryTasksRequest(filter=selector))
    assert (retried.matched_count, retried.retried_count) == (3, 3)
    assert {copy.task_id for copy in retried.retried} == {task.id for task in demo}
    selector.payload_contains.update({"message": "acme down"})
    selector.error_type = NON_RETRYABLE
    counted = await stub.BatchRetryTasks(pb.BatchRetryTasksRequest(filter=selector, dry_run=True))
    assert counted.matched_count == 2

    other = mint_token(TEST_SECRET, f"other-{uuid.uuid4().hex[:6]}")
    async with helpers.channel(f"127.0.0.1:{api.port}", other) as channel:
        theirs = TaskServiceStub(channel)
        assert list((await theirs.ListFailureGroups(pb.ListFailureGroupsRequest())).groups) == []
        assert list((await theirs.GetActivity(pb.GetActivityRequest())).queues) == []


async def test_activity_counts_each_queue_minute_by_minute(
    clean_db: None, stub: TaskServiceStub
) -> None:
    before = datetime.now(UTC)
    ended = [await run_to_the_end(stub, request("demo.echo")) for _ in range(3)]
    ended.append(await run_to_the_end(stub, failing("x", retryable=False)))

    (activity,) = (await stub.GetActivity(pb.GetActivityRequest(queue="default"))).queues
    assert activity.queue == "default"
    starts = [minute.start_time.ToDatetime(UTC) for minute in activity.minutes]
    assert len(starts) == 60
    assert all(later - earlier == timedelta(minutes=1) for earlier, later in pairwise(starts))
    assert starts[-1] <= datetime.now(UTC) < starts[-1] + timedelta(minutes=1)
    assert starts[0] <= before
    totals = [sum(getattr(m, name) for m in activity.minutes) for name in ("succeeded", "failed")]
    assert totals == [3, 1]
    assert sum(minute.started for minute in activity.minutes) == 4
    for minute in activity.minutes:
        if minute.started:
            assert minute.HasField("wait_p50") and minute.HasField("wait_p95")
            p50, p95 = minute.wait_p50.ToTimedelta(), minute.wait_p95.ToTimedelta()
            assert timedelta(0) <= p50 <= p95 < timedelta(seconds=30)
        else:
            assert not minute.HasField("wait_p50")
    everything = (await stub.GetActivity(pb.GetActivityRequest())).queues
    assert [queue.queue for queue in everything] == ["default"]


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (pb.ListTasksRequest(error_type="e" * (MAX_ERROR_TYPE_LENGTH + 1)), "error_type"),
        (payload_filter({"n": math.nan}), "payload_contains"),
        (payload_filter({"s": "a\x00b"}), "payload_contains"),
    ],
)
async def test_bad_filters_are_refused_naming_the_field(
    stub: TaskServiceStub, message: pb.ListTasksRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ListTasks(message)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (raised.value.details() or "").startswith(field)


async def test_bad_overview_filters_are_refused_naming_the_field(stub: TaskServiceStub) -> None:
    for call in (
        stub.ListFailureGroups(pb.ListFailureGroupsRequest(queue="Not A Queue")),
        stub.GetActivity(pb.GetActivityRequest(queue="Not A Queue")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (raised.value.details() or "").startswith("queue")
