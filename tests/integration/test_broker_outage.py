"""A broker outage while tasks flow: the api still accepts (it only stores), the dispatcher gives
up publishing after about 1.5 s without exiting, the repair loop publishes those tasks again once
Redis is back, and the worker reconnects by itself and runs them. Runs on a Redis server of its
own, stopped and started by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from services.api.server import start_api
from taskscheduler.devstack.embedded import EmbeddedRedis, free_port
from taskscheduler.settings import Settings, with_driver
from taskscheduler.v1 import task_pb2
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests import helpers
from tests.helpers import request
from tests.servers import fresh_database, start_dispatcher, start_worker

SUCCESS = task_pb2.TASK_STATUS_SUCCESS


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
    worker = start_worker(own, tmp_path)
    dispatcher = start_dispatcher(own, tmp_path)
    try:
        async with helpers.channel(f"127.0.0.1:{api.port}", token) as channel:
            stub = TaskServiceStub(channel)
            before = await helpers.schedule(stub, request("demo.echo"))
            await helpers.wait_for_status(stub, before.id, SUCCESS)

            own_redis.stop()
            accepted = [await helpers.schedule(stub, request("demo.echo")) for _ in range(5)]
            assert all(task.status == task_pb2.TASK_STATUS_PENDING for task in accepted)
            # Down for longer than a publish is tried: the batch is left to the repair loop.
            await helpers.wait_until(lambda: "did not take the messages" in dispatcher.log())
            own_redis.start()

            for task in accepted:
                await helpers.wait_for_status(stub, task.id, SUCCESS)
            assert worker.popen.poll() is None and dispatcher.popen.poll() is None
            assert published_again(own, [task.id for task in accepted]) > 0
    finally:
        worker.stop()
        dispatcher.stop()
        await api.stop()


def published_again(settings: Settings, task_ids: list[str]) -> int:
    with psycopg.connect(with_driver(settings.database_url, "postgresql")) as conn:
        row = conn.execute(
            "SELECT count(*) FROM tasks WHERE id = ANY(%s::uuid[]) AND publish_count > 0",
            (task_ids,),
        ).fetchone()
    return int(row[0]) if row else 0
