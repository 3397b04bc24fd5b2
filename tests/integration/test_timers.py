"""Wake-ups of the dispatcher: with an idle poll of a minute, a task due now and a task due in
2 s must both start on a NOTIFY, far sooner than the poll would have brought them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from taskscheduler.settings import Settings
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.helpers import follow, request, schedule
from tests.servers import ServiceProcess, start_dispatcher

S = task_pb2
IDLE_POLL_SECONDS = 60
# A functional bound, not a timing one: a start this late can only come from the poll.
NOT_THE_POLL = timedelta(seconds=IDLE_POLL_SECONDS / 4)


@pytest.fixture(scope="module")
def slow_polling_dispatcher(settings: Settings, log_dir: Path) -> Iterator[ServiceProcess]:
    """The only dispatcher of this module: its poll never fires during a test."""
    slow = settings.model_copy(update={"dispatcher_idle_poll_seconds": IDLE_POLL_SECONDS})
    process = start_dispatcher(slow, log_dir)
    yield process
    process.stop()


pytestmark = pytest.mark.usefixtures("worker", "slow_polling_dispatcher")


async def follow_within(stub: TaskServiceStub, task_id: str) -> list[pb.StreamStatusResponse]:
    """The task's events to its end; a missed wake-up fails here instead of after the poll."""
    async with asyncio.timeout(NOT_THE_POLL.total_seconds()):
        return await follow(stub, task_id)


async def test_a_task_due_now_starts_on_the_notify_of_its_commit(stub: TaskServiceStub) -> None:
    for number in range(3):  # not only the first task of the tenant (its queue's creation)
        task = await schedule(stub, request("demo.echo", {"number": number}))
        final = (await follow_within(stub, task.id))[-1].task
        assert final.status == S.TASK_STATUS_SUCCESS
        waited = final.start_time.ToDatetime() - final.create_time.ToDatetime()
        assert waited < NOT_THE_POLL


async def test_a_task_due_in_two_seconds_is_scheduled_until_then_and_starts_on_time(
    stub: TaskServiceStub,
) -> None:
    message = request("demo.echo", run_in=timedelta(seconds=2))
    run_at = message.run_at.ToDatetime()
    task = await schedule(stub, message)
    assert task.status == S.TASK_STATUS_SCHEDULED
    events = await follow_within(stub, task.id)
    assert [event.status for event in events] == [
        S.TASK_STATUS_SCHEDULED,
        S.TASK_STATUS_PENDING,
        S.TASK_STATUS_RUNNING,
        S.TASK_STATUS_SUCCESS,
    ]
    promoted = events[1].event_time.ToDatetime()
    assert promoted >= run_at  # SCHEDULED until its run_at
    started = events[-1].task.start_time.ToDatetime()
    assert run_at <= started < run_at + NOT_THE_POLL
