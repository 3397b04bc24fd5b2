"""BatchScheduleTasks: all or none, errors naming the item, per-item idempotency, published."""

from __future__ import annotations

import asyncio

import grpc
import psycopg
import pytest

from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.helpers import follow, request


def batch(*items: pb.ScheduleTaskRequest) -> pb.BatchScheduleTasksRequest:
    return pb.BatchScheduleTasksRequest(requests=list(items))


def keyed(key: str, **payload: object) -> pb.ScheduleTaskRequest:
    item = request("demo.echo", dict(payload))
    item.request_id = key
    return item


def count(db: psycopg.Connection[tuple[object, ...]]) -> int:
    row = db.execute("SELECT count(*) FROM tasks").fetchone()
    assert row is not None and isinstance(row[0], int)
    return row[0]


async def test_a_batch_is_stored_in_order_and_runs(
    stub: TaskServiceStub,
    db: psycopg.Connection[tuple[object, ...]],
    worker: object,
    dispatcher: object,
) -> None:
    items = [request("demo.echo", {"i": i}) for i in range(5)]
    response = await stub.BatchScheduleTasks(batch(*items))
    assert [dict(t.payload) for t in response.tasks] == [{"i": i} for i in range(5)]
    assert count(db) == 5
    finals = await asyncio.gather(*(follow(stub, t.id) for t in response.tasks))
    assert all(events[-1].status == task_pb2.TASK_STATUS_SUCCESS for events in finals)


async def test_an_invalid_item_rejects_the_whole_batch_naming_it(
    stub: TaskServiceStub, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    items = [request("demo.echo"), request("demo.echo"), request("demo.sleep", {"seconds": "x"})]
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.BatchScheduleTasks(batch(*items))
    assert excinfo.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (excinfo.value.details() or "").startswith("requests[2].payload.seconds:")
    assert count(db) == 0


@pytest.mark.parametrize("size", [0, 1001])
async def test_batch_size_is_bounded(stub: TaskServiceStub, size: int) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.BatchScheduleTasks(batch(*[request("demo.echo")] * size))
    assert excinfo.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_idempotency_keys_work_per_item(
    stub: TaskServiceStub, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    first = (await stub.BatchScheduleTasks(batch(keyed("a", n=1), keyed("b", n=2)))).tasks
    again = (await stub.BatchScheduleTasks(batch(keyed("a", n=1), keyed("c", n=3)))).tasks
    assert again[0].id == first[0].id and again[1].id not in {t.id for t in first}
    twice = (await stub.BatchScheduleTasks(batch(keyed("d", n=4), keyed("d", n=4)))).tasks
    assert twice[0].id == twice[1].id
    assert count(db) == 4
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.BatchScheduleTasks(batch(keyed("e", n=5), keyed("a", n=99)))
    assert excinfo.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert count(db) == 4  # all or none: "e" was not kept either
