"""BatchCancelTasks and BatchRetryTasks on the real database: by filter across several pages,
by ids with the reasons of those not acted on, idempotent when repeated, another tenant's
tasks untouched, bad input refused naming its field."""

from __future__ import annotations

import uuid
from datetime import timedelta

import grpc
import pytest

from services.api.server import RunningApi
from taskscheduler.core.limits import BULK_PAGE_SIZE, MAX_BULK_IDS
from taskscheduler.tokens import mint_token
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests import helpers
from tests.conftest import TEST_SECRET
from tests.helpers import request

SCHEDULED, CANCELLED = task_pb2.TASK_STATUS_SCHEDULED, task_pb2.TASK_STATUS_CANCELLED
COUNT = 2 * BULK_PAGE_SIZE + 50  # three pages


async def schedule_later(stub: TaskServiceStub, queue: str, count: int) -> list[str]:
    item = request("demo.echo", run_in=timedelta(hours=1))
    item.queue = queue
    response = await stub.BatchScheduleTasks(pb.BatchScheduleTasksRequest(requests=[item] * count))
    return [task.id for task in response.tasks]


async def statuses_in(stub: TaskServiceStub, queue: str) -> dict[int, int]:
    counted: dict[int, int] = {}
    token = ""
    while True:
        page = await stub.ListTasks(
            pb.ListTasksRequest(queue=queue, page_size=1000, page_token=token)
        )
        for task in page.tasks:
            counted[task.status] = counted.get(task.status, 0) + 1
        token = page.next_page_token
        if not token:
            return counted


def in_queue(queue: str, *statuses: task_pb2.TaskStatus.ValueType) -> pb.TaskSelector:
    return pb.TaskSelector(queue=queue, statuses=statuses)


async def test_cancel_and_retry_by_filter_across_pages_for_one_tenant_only(
    clean_db: None, api: RunningApi, stub: TaskServiceStub
) -> None:
    queue = "default"
    mine = await schedule_later(stub, queue, COUNT)
    other = mint_token(TEST_SECRET, f"other-{uuid.uuid4().hex[:6]}")
    async with helpers.channel(f"127.0.0.1:{api.port}", other) as channel:
        theirs = TaskServiceStub(channel)
        await schedule_later(theirs, queue, 10)

        counted = await stub.BatchCancelTasks(
            pb.BatchCancelTasksRequest(filter=in_queue(queue, SCHEDULED), dry_run=True)
        )
        assert (counted.matched_count, counted.cancelled_count) == (COUNT, 0)
        assert await statuses_in(stub, queue) == {SCHEDULED: COUNT}

        cancelled = await stub.BatchCancelTasks(
            pb.BatchCancelTasksRequest(filter=in_queue(queue, SCHEDULED))
        )
        assert (cancelled.matched_count, cancelled.cancelled_count) == (COUNT, COUNT)
        assert cancelled.not_acted_count == 0
        assert await statuses_in(stub, queue) == {CANCELLED: COUNT}
        assert await statuses_in(theirs, queue) == {SCHEDULED: 10}
        again = await stub.BatchCancelTasks(
            pb.BatchCancelTasksRequest(filter=in_queue(queue, SCHEDULED))
        )
        assert again.matched_count == 0  # nothing left to cancel: a repeat changes nothing

        retried = await stub.BatchRetryTasks(
            pb.BatchRetryTasksRequest(filter=in_queue(queue, CANCELLED))
        )
        assert (retried.matched_count, retried.retried_count) == (COUNT, COUNT)
        copies = {r.task_id: r.copy_id for r in retried.retried}
        assert set(copies) == set(mine) and len(set(copies.values())) == COUNT
        repeated = await stub.BatchRetryTasks(
            pb.BatchRetryTasksRequest(filter=in_queue(queue, CANCELLED))
        )
        assert {r.task_id: r.copy_id for r in repeated.retried} == copies  # no second copy
        listed = await statuses_in(stub, queue)
        assert listed[CANCELLED] == COUNT and sum(listed.values()) == 2 * COUNT
        assert await statuses_in(theirs, queue) == {SCHEDULED: 10}


async def test_by_ids_names_what_it_did_not_act_on(
    clean_db: None, api: RunningApi, stub: TaskServiceStub
) -> None:
    waiting, finished = await schedule_later(stub, "default", 2)
    await stub.CancelTask(pb.CancelTaskRequest(task_id=finished))
    other = mint_token(TEST_SECRET, f"other-{uuid.uuid4().hex[:6]}")
    async with helpers.channel(f"127.0.0.1:{api.port}", other) as channel:
        (theirs,) = await schedule_later(TaskServiceStub(channel), "default", 1)
    unknown = str(uuid.uuid4())
    response = await stub.BatchCancelTasks(
        pb.BatchCancelTasksRequest(task_ids=[waiting, finished, unknown, theirs, waiting])
    )
    assert (response.matched_count, response.cancelled_count) == (4, 1)  # each id once
    reasons = {item.task_id: item.reason for item in response.not_acted}
    assert reasons == {
        finished: "TASK_ALREADY_FINISHED",
        unknown: "TASK_NOT_FOUND",
        theirs: "TASK_NOT_FOUND",  # another tenant's task is not the caller's to know of
    }
    retried = await stub.BatchRetryTasks(pb.BatchRetryTasksRequest(task_ids=[waiting, unknown]))
    assert retried.retried_count == 1 and retried.retried[0].task_id == waiting


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (pb.BatchCancelTasksRequest(), "task_ids"),
        (
            pb.BatchCancelTasksRequest(task_ids=[str(uuid.uuid4())], filter=pb.TaskSelector()),
            "task_ids",
        ),
        (pb.BatchCancelTasksRequest(task_ids=[str(uuid.uuid4()), "nope"]), "task_ids[1]"),
        (pb.BatchCancelTasksRequest(task_ids=[str(uuid.uuid4())] * (MAX_BULK_IDS + 1)), "task_ids"),
        (pb.BatchCancelTasksRequest(filter=pb.TaskSelector(queue="bad name")), "filter.queue"),
        (
            pb.BatchCancelTasksRequest(
                filter=pb.TaskSelector(statuses=[task_pb2.TaskStatus.ValueType(42)])
            ),
            "filter.statuses",
        ),
        (pb.BatchCancelTasksRequest(filter=pb.TaskSelector(workflow_id="x")), "filter.workflow_id"),
    ],
)
async def test_bad_input_is_refused_naming_its_field(
    stub: TaskServiceStub, message: pb.BatchCancelTasksRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.BatchCancelTasks(message)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (raised.value.details() or "").startswith(field), raised.value.details()


async def test_a_time_window_must_not_be_empty(stub: TaskServiceStub) -> None:
    window = pb.TaskSelector()
    window.create_time_after.GetCurrentTime()
    window.create_time_before.CopyFrom(window.create_time_after)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.BatchRetryTasks(pb.BatchRetryTasksRequest(filter=window))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "filter.create_time_before" in (raised.value.details() or "")
