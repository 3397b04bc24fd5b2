"""The stack as `make run` starts it, on the test servers, shared by the end-to-end tests: one
with Redis as the broker, one with RabbitMQ."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import pytest

from taskscheduler.devstack.embedded import free_port, rabbitmq_server
from taskscheduler.devstack.stack import Broker, Stack, StackConfig, on_free_ports
from tests.servers import Servers, fresh_database

BROKERS = [
    Broker.REDIS,
    pytest.param(
        Broker.RABBITMQ,
        marks=pytest.mark.skipif(
            rabbitmq_server() is None, reason="no rabbitmq-server: `make test` installs Debian's"
        ),
    ),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test of the shared stack (or one taking `broker`) runs once on each broker, but in a
    module that sets ONE_BROKER: what it checks (the REST contract, the dashboard's pages,
    the client's packaging) never reaches the broker."""
    if "broker" in metafunc.fixturenames:
        one = getattr(metafunc.module, "ONE_BROKER", False)
        metafunc.parametrize("broker", BROKERS[:1] if one else BROKERS, scope="package")


def start_stack(config: StackConfig) -> Stack:
    stack = Stack(config)
    try:
        stack.start()
        wait_for_health(f"http://127.0.0.1:{config.gateway_port}")
    except BaseException:
        stack.stop()
        raise
    return stack


def wait_for_health(base_url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base_url}/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the stack did not become healthy"
        time.sleep(0.1)


@pytest.fixture(scope="package")
def stack(
    servers: Servers, broker: Broker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    config = on_free_ports(
        tmp_path_factory.mktemp(f"stack-{broker}"),
        database_url=fresh_database(servers.database_url),
        redis_url=servers.redis_url,
        broker=broker,
        extra_env={"TASKSCHED_CELERY_QUEUE": f"e2e-{free_port()}", "TASKSCHED_LOG_FORMAT": "json"},
        log_stream=io.StringIO(),
    )
    running = start_stack(config)
    yield running
    running.stop()


@pytest.fixture(scope="package")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.config.gateway_port}",
        timeout=30,
        headers={"authorization": f"Bearer {stack.token()}"},
    ) as c:
        yield c
