"""SIGTERM to a worker: the attempt it is running finishes, the task waiting behind it runs on
the next worker, and nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

from services.api.server import start_api
from taskscheduler.settings import Settings
from taskscheduler.v1 import task_pb2
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests import helpers
from tests.helpers import follow, request, schedule, wait_for_status
from tests.servers import start_dispatcher, start_worker


async def test_sigterm_lets_the_running_attempt_finish(
    settings: Settings, log_dir: Path, token: str
) -> None:
    own = settings.model_copy(update={"celery_queue": f"shutdown-{uuid.uuid4().hex[:8]}"})
    api = await start_api(own)
    worker = start_worker(own, log_dir, concurrency=1)
    dispatcher = start_dispatcher(own, log_dir)
    try:
        async with helpers.channel(f"127.0.0.1:{api.port}", token) as channel:
            stub = TaskServiceStub(channel)
            task = await schedule(
                stub, request("demo.sleep", {"seconds": 2, "ignore_cancel": True})
            )
            await wait_for_status(stub, task.id, task_pb2.TASK_STATUS_RUNNING)
            waiting = await schedule(stub, request("demo.echo"))  # behind it: no free slot
            worker.popen.send_signal(signal.SIGTERM)
            final = (await follow(stub, task.id))[-1].task
            assert final.status == task_pb2.TASK_STATUS_SUCCESS and final.attempt == 1
            assert await asyncio.to_thread(worker.popen.wait, 30) == 0
            assert "Warm shutdown" in worker.log()
            # The task the stopped worker never started runs on the next worker, once.
            assert (await helpers.get(stub, waiting.id)).status == task_pb2.TASK_STATUS_PENDING
            worker = start_worker(own, log_dir, concurrency=1)
            after = (await follow(stub, waiting.id))[-1].task
            assert after.status == task_pb2.TASK_STATUS_SUCCESS and after.attempt == 1
    finally:
        worker.stop()
        dispatcher.stop()
        await api.stop()
