"""A worker that comes back after its lease expired: its task already ran again elsewhere, and
the late attempt cannot overwrite the newer one (completions are fenced by attempt number)."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest

from taskscheduler.v1 import task_pb2
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.helpers import follow, get, request, schedule, wait_for_status, wait_until
from tests.servers import ServiceProcess

S = task_pb2

pytestmark = pytest.mark.usefixtures("dispatcher", "clean_db")


async def test_a_frozen_worker_that_wakes_up_late_overwrites_nothing(
    stub: TaskServiceStub, worker: ServiceProcess
) -> None:
    message = request("demo.sleep", {"seconds": 3}, initial_backoff=timedelta(milliseconds=50))
    task = await schedule(stub, message)
    running = await wait_for_status(stub, task.id, S.TASK_STATUS_RUNNING)
    frozen = int(running.attempts[0].worker.rsplit(":", 1)[1])
    os.kill(frozen, signal.SIGSTOP)  # alive but silent: no heartbeat, no completion
    try:
        second = await wait_for_status(stub, task.id, S.TASK_STATUS_RUNNING, attempt=2)
    finally:
        os.kill(frozen, signal.SIGCONT)
    assert second.attempts[0].error_type == "taskscheduler.WorkerLost"
    # Attempt 1 wakes up while attempt 2 runs: its sleep is over, it reports success, and the
    # attempt fence turns that write away.
    await wait_until(lambda: f"task {task.id} attempt 1:" in worker.log())
    during = await get(stub, task.id)
    assert during.status == S.TASK_STATUS_RUNNING and during.attempt == 2
    assert during.attempts[0].error_type == "taskscheduler.WorkerLost"

    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_SUCCESS and final.attempt == 2
    assert [a.error_type for a in final.attempts] == ["taskscheduler.WorkerLost", ""]
