"""The stack as `make run` starts it, on the test servers, shared by the end-to-end tests."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import pytest

from taskscheduler.devstack.embedded import free_port
from taskscheduler.devstack.stack import Stack, StackConfig, on_free_ports
from tests.servers import Servers, fresh_database


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
def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    config = on_free_ports(
        tmp_path_factory.mktemp("stack"),
        database_url=fresh_database(servers.database_url),
        redis_url=servers.redis_url,
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
