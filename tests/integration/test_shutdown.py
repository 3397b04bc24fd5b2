"""SIGTERM to the api: health turns NOT_SERVING first, in-flight calls finish, then it exits."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskscheduler.devstack.embedded import free_port, wait_for_port
from taskscheduler.settings import Settings, with_driver
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests import helpers
from tests.servers import process_env

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_sigterm_turns_health_not_serving_and_lets_an_open_stream_finish(
    settings: Settings, log_dir: Path, token: str, clean_db: None
) -> None:
    port = free_port()
    env = process_env(settings) | {
        "TASKSCHED_GRPC_PORT": str(port),
        "TASKSCHED_GRPC_SHUTDOWN_GRACE_SECONDS": "30",
    }
    log = (log_dir / "api-shutdown.log").open("w")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.api", env=env, stdout=log, stderr=log
    )
    await asyncio.to_thread(wait_for_port, port, 30)
    async with helpers.channel(f"127.0.0.1:{port}", token) as channel:
        stub = TaskServiceStub(channel)
        # No dispatcher runs here: the task waits PENDING until the test ends it.
        task = await helpers.schedule(stub, helpers.request("demo.echo"))
        stream = stub.StreamStatus(pb.StreamStatusRequest(task_id=task.id), timeout=60)
        assert (await stream.read()).status == task_pb2.TASK_STATUS_PENDING
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == SERVING

        process.send_signal(signal.SIGTERM)
        assert (await watch.read()).status == NOT_SERVING
        # The stream opened before SIGTERM still gets the change made during the drain.
        cancel_in_database(settings, task.id)
        last = await stream.read()
        assert last.status == task_pb2.TASK_STATUS_CANCELLED
        assert await stream.code() == grpc.StatusCode.OK
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert "draining in-flight calls" in (log_dir / "api-shutdown.log").read_text()


def cancel_in_database(settings: Settings, task_id: str) -> None:
    """A status change from outside this api (its own calls are refused while it drains)."""
    with psycopg.connect(with_driver(settings.database_url, "postgresql"), autocommit=True) as conn:
        conn.execute(
            "UPDATE tasks SET status = 'CANCELLED', finished_at = now() "
            "WHERE id = %s AND status = 'PENDING'",
            (task_id,),
        )
