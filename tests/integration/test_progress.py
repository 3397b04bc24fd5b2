"""Progress from handlers over the real stack: a worker's reports reach a StreamStatus
subscriber in order between the task's status changes, and GetTask keeps the last one."""

from __future__ import annotations

import psycopg

from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.helpers import follow, get, request, schedule
from tests.servers import ServiceProcess


async def test_progress_reaches_a_stream_in_order_and_stays_on_the_task(
    db: psycopg.Connection[tuple[object, ...]],
    stub: TaskServiceStub,
    worker: ServiceProcess,
    dispatcher: ServiceProcess,
) -> None:
    task = await schedule(stub, request("demo.sleep", {"seconds": 1.5}))
    events = await follow(stub, task.id, progress=True)
    kinds = [event.kind for event in events]
    reports = [event for event in events if event.kind == pb.TASK_EVENT_KIND_PROGRESS]
    statuses = [event.status for event in events if event.kind == pb.TASK_EVENT_KIND_STATUS]
    assert statuses[-2:] == [task_pb2.TASK_STATUS_RUNNING, task_pb2.TASK_STATUS_SUCCESS]
    # Every report comes after RUNNING and before SUCCESS, its numbers growing.
    first, last = kinds.index(pb.TASK_EVENT_KIND_PROGRESS), len(kinds) - 1
    assert kinds[first:last] == [pb.TASK_EVENT_KIND_PROGRESS] * (last - first)
    assert events[first - 1].status == task_pb2.TASK_STATUS_RUNNING
    done = [event.progress.done for event in reports]
    assert done == sorted(done) and len(done) >= 4 and done[-1] == 1.5
    assert all(not event.HasField("task") and event.attempt == 1 for event in reports)
    assert all(event.progress.total == 1.5 for event in reports)
    # Throttled: 30 naps of 50 ms reported, at most 4 writes a second (and the last).
    assert len(reports) <= 9
    final = await get(stub, task.id)
    assert (final.progress.done, final.progress.message) == (1.5, "done")
    assert final.progress.update_time.ToDatetime() <= final.finish_time.ToDatetime()
