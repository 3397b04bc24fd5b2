"""ExplainTask over the real stack: each reason code, produced by the very situation it names."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest

from taskscheduler.v1 import queue_pb2, task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.helpers import eventually, request, schedule, wait_for_status
from tests.servers import ServiceProcess

Code = pb.WaitReasonCode


async def explain(stub: TaskServiceStub, task_id: str) -> pb.ExplainTaskResponse:
    response: pb.ExplainTaskResponse = await stub.ExplainTask(
        pb.ExplainTaskRequest(task_id=task_id)
    )
    return response


def codes(explained: pb.ExplainTaskResponse) -> list[int]:
    return [reason.code for reason in explained.reasons]


def reason(explained: pb.ExplainTaskResponse, code: int) -> pb.WaitReason:
    return next(r for r in explained.reasons if r.code == code)


async def new_queue(stub: TaskServiceStub, **settings: Any) -> str:
    name = f"q-{uuid.uuid4().hex[:8]}"
    await stub.CreateQueue(pb.CreateQueueRequest(queue=queue_pb2.Queue(name=name, **settings)))
    return name


async def in_queue(
    stub: TaskServiceStub, queue: str, kind: str = "demo.echo", **fields: Any
) -> task_pb2.Task:
    payload = fields.pop("payload", None)
    message = request(kind, payload)
    message.queue = queue
    for name, value in fields.items():
        setattr(message, name, value)
    return await schedule(stub, message)


# First, before any worker of this module starts: every worker row was cleared by clean_db.
async def test_no_worker_and_dispatched_waiting_for_one(
    clean_db: None, stub: TaskServiceStub, dispatcher: ServiceProcess
) -> None:
    task = await schedule(stub, request("demo.echo"))

    async def dispatched() -> bool:
        return Code.WAIT_REASON_CODE_DISPATCHED_WAITING_FOR_WORKER in codes(
            await explain(stub, task.id)
        )

    await eventually(dispatched)
    explained = await explain(stub, task.id)
    assert explained.status == task_pb2.TASK_STATUS_PENDING
    assert codes(explained) == [
        Code.WAIT_REASON_CODE_DISPATCHED_WAITING_FOR_WORKER,
        Code.WAIT_REASON_CODE_NO_WORKER_FOR_QUEUE,
    ]
    assert reason(explained, Code.WAIT_REASON_CODE_DISPATCHED_WAITING_FOR_WORKER).count >= 1
    assert "no live worker serves queue 'default'" in explained.reasons[1].message


@pytest.fixture
async def running_worker(
    clean_db: None, stub: TaskServiceStub, worker: ServiceProcess, dispatcher: ServiceProcess
) -> AsyncIterator[None]:
    """The module's worker, registered again after clean_db cleared its rows."""
    probe = await schedule(stub, request("demo.echo"))
    await wait_for_status(stub, probe.id, task_pb2.TASK_STATUS_SUCCESS)

    async def registered() -> bool:
        listed = await stub.ListWorkers(pb.ListWorkersRequest())
        return len(listed.workers) >= 3

    await eventually(registered)
    yield


async def test_not_due(stub: TaskServiceStub, running_worker: None) -> None:
    task = await schedule(stub, request("demo.echo", run_in=timedelta(hours=1)))
    explained = await explain(stub, task.id)
    assert codes(explained) == [Code.WAIT_REASON_CODE_NOT_DUE]
    assert explained.reasons[0].until == task.run_at


async def test_retry_backoff(stub: TaskServiceStub, running_worker: None) -> None:
    task = await schedule(
        stub,
        request(
            "demo.fail",
            {"message": "card declined"},
            max_attempts=3,
            initial_backoff=timedelta(hours=1),
            jitter=False,
        ),
    )
    retrying = await wait_for_status(stub, task.id, task_pb2.TASK_STATUS_RETRYING)
    explained = await explain(stub, task.id)
    assert codes(explained) == [Code.WAIT_REASON_CODE_RETRY_BACKOFF]
    assert explained.reasons[0].until == retrying.run_at
    assert "attempt 1 of 3 failed" in explained.reasons[0].message
    assert "card declined" in explained.reasons[0].message


async def test_blocked_by_dependencies(stub: TaskServiceStub, running_worker: None) -> None:
    first = await schedule(stub, request("demo.echo", run_in=timedelta(hours=1)))
    after = request("demo.echo")
    after.depends_on.append(first.id)
    blocked = await schedule(stub, after)
    explained = await explain(stub, blocked.id)
    assert explained.status == task_pb2.TASK_STATUS_BLOCKED
    assert codes(explained) == [Code.WAIT_REASON_CODE_BLOCKED_BY_DEPENDENCIES]
    assert list(explained.reasons[0].task_ids) == [first.id]


async def test_queue_paused_and_behind_other_tasks(
    stub: TaskServiceStub, running_worker: None
) -> None:
    queue = await new_queue(stub)
    await stub.PauseQueue(pb.PauseQueueRequest(name=queue))
    first = await in_queue(stub, queue)
    second = await in_queue(stub, queue)
    urgent = await in_queue(stub, queue, priority=9)
    explained = await explain(stub, second.id)
    assert codes(explained) == [
        Code.WAIT_REASON_CODE_QUEUE_PAUSED,
        Code.WAIT_REASON_CODE_BEHIND_OTHER_TASKS,
    ]
    assert explained.reasons[1].count == 2  # the urgent one, then the first
    assert codes(await explain(stub, urgent.id)) == [Code.WAIT_REASON_CODE_QUEUE_PAUSED]
    assert (
        reason(await explain(stub, first.id), Code.WAIT_REASON_CODE_BEHIND_OTHER_TASKS).count == 1
    )


async def test_rate_limited(stub: TaskServiceStub, running_worker: None) -> None:
    queue = await new_queue(stub, rate_limit=queue_pb2.RateLimit(per_second=0.001, burst=1))
    task = await in_queue(stub, queue)
    explained = await explain(stub, task.id)
    assert codes(explained) == [Code.WAIT_REASON_CODE_RATE_LIMITED]
    until = explained.reasons[0].until.ToDatetime()
    assert timedelta(minutes=15) < until - task.create_time.ToDatetime() <= timedelta(minutes=17)


async def test_queue_and_key_concurrency_limits(
    stub: TaskServiceStub, running_worker: None
) -> None:
    capped = await new_queue(stub, max_concurrent=1)
    holder = await in_queue(stub, capped, "demo.sleep", payload={"seconds": 30})
    await wait_for_status(stub, holder.id, task_pb2.TASK_STATUS_RUNNING)
    waiting = await in_queue(stub, capped)
    explained = await explain(stub, waiting.id)
    assert codes(explained) == [Code.WAIT_REASON_CODE_QUEUE_CONCURRENCY_LIMIT]
    assert (explained.reasons[0].count, explained.reasons[0].limit) == (1, 1)

    keyed = await new_queue(stub, max_concurrent_per_key=1)
    key_holder = await in_queue(
        stub, keyed, "demo.sleep", payload={"seconds": 30}, concurrency_key="acme"
    )
    await wait_for_status(stub, key_holder.id, task_pb2.TASK_STATUS_RUNNING)
    same_key = await in_queue(stub, keyed, concurrency_key="acme")
    explained = await explain(stub, same_key.id)
    assert codes(explained) == [Code.WAIT_REASON_CODE_KEY_CONCURRENCY_LIMIT]
    assert "'acme'" in explained.reasons[0].message
    for task in (holder, key_holder):
        await stub.CancelTask(pb.CancelTaskRequest(task_id=task.id))


async def test_a_running_task_names_its_worker_and_lease(
    stub: TaskServiceStub, running_worker: None
) -> None:
    task = await schedule(stub, request("demo.sleep", {"seconds": 2}))
    running = await wait_for_status(stub, task.id, task_pb2.TASK_STATUS_RUNNING)
    explained = await explain(stub, task.id)
    assert not explained.reasons
    assert explained.worker == running.attempts[-1].worker
    assert explained.lease_expire_time.ToDatetime() > running.start_time.ToDatetime()


async def test_an_unknown_or_malformed_id(stub: TaskServiceStub) -> None:
    for task_id, code in ((str(uuid.uuid4()), grpc.StatusCode.NOT_FOUND),
                          ("nope", grpc.StatusCode.INVALID_ARGUMENT)):  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await explain(stub, task_id)
        assert raised.value.code() == code
