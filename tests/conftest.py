"""Shared fixtures: real PostgreSQL and Redis, a migrated database, the api in-process."""

from __future__ import annotations

import os

# Before gRPC is loaded: these tests start subprocesses while gRPC threads run, and gRPC's fork
# handlers then crashed forked children now and then (SIGSEGV before their exec).
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest

from services.api.server import RunningApi, start_api
from taskscheduler.settings import Settings, with_driver
from taskscheduler.tokens import mint_token
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests import helpers
from tests.servers import (
    Servers,
    ServiceProcess,
    running_servers,
    settings_for,
    start_dispatcher,
    start_worker,
)

TEST_SECRET = "test-secret-" + "x" * 40
TENANT = "tenant-a"


@pytest.fixture(scope="session")
def token(settings: Settings) -> str:
    return mint_token(TEST_SECRET, TENANT)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with running_servers(tmp_path_factory.mktemp("servers")) as running:
        yield running


@pytest.fixture(scope="session")
def settings(servers: Servers) -> Settings:
    return settings_for(
        servers,
        dispatcher_idle_poll_seconds=0.5,
        lease_seconds=2,
        stop_grace_seconds=1,
        republish_after_seconds=3,
        worker_heartbeat_seconds=1,
        jwt_secret=TEST_SECRET,
        rate_limit_rps=1000,
        rate_limit_burst=1000,
        handler_modules=["tests.sample_handlers"],
        api_metrics_port=0,  # the end-to-end stack's processes serve metrics, on free ports
        worker_metrics_port=0,
        dispatcher_metrics_port=0,
    )


@pytest.fixture
async def clean_db(settings: Settings) -> AsyncIterator[None]:
    """Async, so that the event loop runs while it waits for its locks: the in-process api
    shares that loop, and a call of a test before (a stream still answering an event) may hold
    a transaction on `tasks` until the loop lets it finish."""
    url = with_driver(settings.database_url, "postgresql")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("TRUNCATE tasks, workflows, workers CASCADE")
        # A tenant's default queue is never deleted (the api remembers it exists): reset it.
        await conn.execute("DELETE FROM queues WHERE name <> 'default'")
        await conn.execute(
            "UPDATE queues SET state = 'RUNNING', rate_per_second = NULL, rate_burst = NULL, "
            "max_concurrent = NULL, max_concurrent_per_key = NULL"
        )
    yield


@pytest.fixture
def db(settings: Settings, clean_db: None) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A plain connection for tests that look at the rows themselves."""
    with psycopg.connect(with_driver(settings.database_url, "postgresql"), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
async def api(settings: Settings) -> AsyncIterator[RunningApi]:
    running = await start_api(settings)
    yield running
    await running.stop()


@pytest.fixture(scope="session")
async def channel(api: RunningApi, token: str) -> AsyncIterator[grpc.aio.Channel]:
    async with helpers.channel(f"127.0.0.1:{api.port}", token) as opened:
        yield opened


@pytest.fixture(scope="session")
def stub(channel: grpc.aio.Channel) -> TaskServiceStub:
    return TaskServiceStub(channel)


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


# Module scope: a dispatcher left running would promote the rows that store tests examine.
@pytest.fixture(scope="module")
def worker(settings: Settings, log_dir: Path) -> Iterator[ServiceProcess]:
    process = start_worker(settings, log_dir)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def dispatcher(settings: Settings, log_dir: Path) -> Iterator[ServiceProcess]:
    process = start_dispatcher(settings, log_dir)
    yield process
    process.stop()
