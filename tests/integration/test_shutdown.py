"""SIGTERM to the api: health turns NOT_SERVING first, then the process drains and exits."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskscheduler.devstack.embedded import free_port, wait_for_port
from taskscheduler.settings import Settings
from tests.servers import process_env

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_sigterm_turns_health_not_serving_then_exits_cleanly(
    settings: Settings, log_dir: Path
) -> None:
    port = free_port()
    env = process_env(settings) | {"TASKSCHED_GRPC_PORT": str(port)}
    log = (log_dir / "api-shutdown.log").open("w")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.api", env=env, stdout=log, stderr=log
    )
    await asyncio.to_thread(wait_for_port, port, 30)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == SERVING
        process.send_signal(signal.SIGTERM)
        assert (await watch.read()).status == NOT_SERVING
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert "draining in-flight calls" in (log_dir / "api-shutdown.log").read_text()
