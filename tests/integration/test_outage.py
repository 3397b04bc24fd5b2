"""A database outage: calls fail fast with UNAVAILABLE / 503 and store nothing; the api
recovers by itself when PostgreSQL is back. Runs on a PostgreSQL server of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.app import create_app
from services.api.server import RunningApi, start_api
from taskscheduler.devstack.embedded import EmbeddedPostgres, free_port
from taskscheduler.settings import Settings
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests import helpers
from tests.helpers import request
from tests.servers import fresh_database


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("outage") / "postgres", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def outage_settings(own_postgres: EmbeddedPostgres, settings: Settings) -> Settings:
    database_url = fresh_database(own_postgres.url(), migrate=True)
    return settings.model_copy(
        update={"database_url": database_url, "db_connect_timeout_seconds": 2}
    )


@pytest.fixture(scope="module")
async def outage_api(outage_settings: Settings) -> AsyncIterator[RunningApi]:
    running = await start_api(outage_settings)
    yield running
    await running.stop()


def post_task(gateway: FastAPI, token: str) -> httpx.Response:
    with TestClient(gateway, headers={"authorization": f"Bearer {token}"}) as client:
        response: httpx.Response = client.post("/v1/tasks", json={"kind": "demo.echo"})
    return response


async def test_database_outage_fails_fast_and_recovers_without_restart(
    outage_api: RunningApi,
    outage_settings: Settings,
    own_postgres: EmbeddedPostgres,
    token: str,
) -> None:
    async with helpers.channel(f"127.0.0.1:{outage_api.port}", token) as channel:
        stub = TaskServiceStub(channel)
        before = (await stub.ScheduleTask(request("demo.echo"))).task
        own_postgres.stop()
        try:
            for call in (
                stub.ScheduleTask(request("demo.echo", {"during": "outage"})),
                stub.GetTask(pb.GetTaskRequest(task_id=before.id)),
            ):
                started = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as excinfo:
                    await call
                assert excinfo.value.code() is grpc.StatusCode.UNAVAILABLE
                assert "database is unavailable" in (excinfo.value.details() or "")
                assert time.monotonic() - started < 5  # fast, not the client's deadline
            gateway = create_app(
                outage_settings.model_copy(update={"api_address": f"127.0.0.1:{outage_api.port}"})
            )
            # The client blocks; the api it calls runs on this event loop.
            response = await asyncio.to_thread(post_task, gateway, token)
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
        finally:
            own_postgres.start()
        after = (await stub.ScheduleTask(request("demo.echo"))).task  # same api, no restart
        listed = await stub.ListTasks(pb.ListTasksRequest())
        assert {task.id for task in listed.tasks} == {before.id, after.id}  # nothing half-written
