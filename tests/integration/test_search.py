"""ListTasks by the start of a task id, on the real database."""

from __future__ import annotations

import grpc
import pytest

from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.helpers import request, schedule


async def test_tasks_are_found_by_the_start_of_their_id(
    clean_db: None, stub: TaskServiceStub
) -> None:
    tasks = [await schedule(stub, request("demo.echo")) for _ in range(20)]
    target = tasks[7]
    for prefix in (target.id[:6], target.id[:13].upper(), target.id):
        found = await stub.ListTasks(pb.ListTasksRequest(task_id_prefix=prefix))
        ids = [task.id for task in found.tasks]
        assert target.id in ids
        assert all(task_id.replace("-", "").startswith(
            prefix.replace("-", "").lower()) for task_id in ids)  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ListTasks(pb.ListTasksRequest(task_id_prefix="not hex"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (raised.value.details() or "").startswith("task_id_prefix")
