"""A broker outage: ScheduleTask still accepts (the task is committed; a short outage is ridden
out by publishing again, a long one is repaired by the dispatcher), and every task runs once
Redis is back. Runs on a Redis server of its own, stopped and started by the test."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.api.server import start_api
from taskscheduler.devstack.embedded import EmbeddedRedis, free_port
from taskscheduler.settings import Settings
from taskscheduler.v1 import task_pb2
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests import helpers
from tests.helpers import request
from tests.servers import fresh_database, start_dispatcher, start_worker


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", free_port(), persistent=False)
    server.start()
    yield server
    server.stop()


@pytest.mark.timeout(120)
async def test_tasks_accepted_while_redis_is_down_all_run(
    own_redis: EmbeddedRedis, settings: Settings, token: str, tmp_path: Path
) -> None:
    own = settings.model_copy(
        update={
            "redis_url": own_redis.url,
            "database_url": fresh_database(settings.database_url, migrate=True),
        }
    )
    api = await start_api(own)
    try:
        async with helpers.channel(f"127.0.0.1:{api.port}", token) as channel:
            stub = TaskServiceStub(channel)
            own_redis.stop()
            restart = threading.Timer(0.3, own_redis.start)
            restart.start()
            blip = await asyncio.gather(
                *(helpers.schedule(stub, request("demo.echo")) for _ in range(10))
            )
            restart.join()
            own_redis.stop()  # now down for longer than publishing tries
            down = [await helpers.schedule(stub, request("demo.echo")) for _ in range(3)]
            own_redis.start()
            accepted = blip + down
            assert all(task.status == task_pb2.TASK_STATUS_PENDING for task in accepted)
            worker = start_worker(own, tmp_path)
            dispatcher = start_dispatcher(own, tmp_path)
            try:
                for task in accepted:
                    await helpers.wait_for_status(stub, task.id, task_pb2.TASK_STATUS_SUCCESS)
            finally:
                worker.stop()
                dispatcher.stop()
    finally:
        await api.stop()
