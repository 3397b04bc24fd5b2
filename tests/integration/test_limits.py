"""Size limits on both transports: the payload limit, gRPC's message limit, the gateway's body
limit; nothing is stored for a request refused by any of them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from services.api.server import RunningApi, start_api
from taskscheduler.settings import Settings
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests import helpers
from tests.integration.test_api import count_tasks, error_info, schedule_request

SMALL_MESSAGES = 64 * 1024
SMALL_PAYLOADS = 1000


@pytest.fixture(scope="module")
async def small_api(settings: Settings) -> AsyncIterator[RunningApi]:
    """Limits far below the defaults: a test that they are read from the settings."""
    update = {"grpc_max_message_bytes": SMALL_MESSAGES, "max_payload_bytes": SMALL_PAYLOADS}
    api = await start_api(settings.model_copy(update=update))
    yield api
    await api.stop()


async def test_a_payload_over_the_configured_limit_is_refused(
    small_api: RunningApi, token: str, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    async with helpers.channel(f"127.0.0.1:{small_api.port}", token) as channel:
        stub = TaskServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            await stub.ScheduleTask(schedule_request(blob="x" * SMALL_PAYLOADS))
        assert excinfo.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        info = error_info(excinfo.value)
        assert (info.reason, info.metadata["field"]) == ("PAYLOAD_TOO_LARGE", "payload")
        assert count_tasks(db) == 0
        await stub.ScheduleTask(schedule_request(blob="x" * (SMALL_PAYLOADS // 2)))
        assert count_tasks(db) == 1


async def test_a_message_over_the_grpc_limit_is_refused_by_the_api(
    small_api: RunningApi, token: str, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    async with helpers.channel(f"127.0.0.1:{small_api.port}", token) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            await TaskServiceStub(channel).ScheduleTask(
                schedule_request(blob="x" * (SMALL_MESSAGES + 1))
            )
    assert excinfo.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert count_tasks(db) == 0


def gateway_of(settings: Settings, api: RunningApi, **update: Any) -> TestClient:
    gateway = create_app(
        settings.model_copy(update={"api_address": f"127.0.0.1:{api.port}", **update})
    )
    return TestClient(gateway, raise_server_exceptions=False)


def post(client: TestClient, token: str, path: str, content: Any) -> httpx.Response:
    with client:
        response: httpx.Response = client.post(
            path,
            content=content,
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
    return response


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["field"] == "body"
    assert "larger than max" not in response.text and "CLIENT" not in response.text


def chunks(body: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_the_gateway_refuses_a_body_over_the_limit_by_length_and_while_streaming(
    small_api: RunningApi,
    settings: Settings,
    token: str,
    db: psycopg.Connection[tuple[object, ...]],
) -> None:
    client = gateway_of(settings, small_api, grpc_max_message_bytes=SMALL_MESSAGES)
    body = json.dumps({"kind": "demo.echo", "payload": {"blob": "x" * SMALL_MESSAGES}}).encode()
    declared = await asyncio.to_thread(post, client, token, "/v1/tasks", body)
    assert_too_large(declared)
    streamed = await asyncio.to_thread(post, client, token, "/v1/tasks", chunks(body))
    assert_too_large(streamed)
    assert count_tasks(db) == 0


async def test_a_body_within_the_limit_whose_message_is_not_is_413_without_grpc_text(
    small_api: RunningApi,
    settings: Settings,
    token: str,
    db: psycopg.Connection[tuple[object, ...]],
) -> None:
    """Numbers cost 2 bytes in JSON and 11 in a protobuf Struct: the message outgrows the body."""
    client = gateway_of(settings, small_api, grpc_max_message_bytes=SMALL_MESSAGES)
    numbers = [0] * (SMALL_MESSAGES // 3)
    body = json.dumps(
        {"kind": "demo.echo", "payload": {"n": numbers}}, separators=(",", ":")
    ).encode()
    assert len(body) < SMALL_MESSAGES
    response = await asyncio.to_thread(post, client, token, "/v1/tasks", body)
    assert_too_large(response)
    assert response.json()["grpc_code"] == "RESOURCE_EXHAUSTED"
    assert count_tasks(db) == 0


async def test_a_batch_over_the_default_message_limit_is_413(
    api: RunningApi, settings: Settings, token: str, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    items = [{"kind": "demo.echo", "payload": {"blob": "x" * 8192}} for _ in range(1000)]
    body = json.dumps({"requests": items}).encode()
    assert len(body) > settings.grpc_max_message_bytes
    response = await asyncio.to_thread(
        post, gateway_of(settings, api), token, "/v1/tasks:batchCreate", body
    )
    assert_too_large(response)
    assert count_tasks(db) == 0


async def test_an_answer_over_the_message_limit_is_502_not_413(
    small_api: RunningApi, settings: Settings, token: str, clean_db: None
) -> None:
    """A GET has no body to blame: a page too large to send asks for a smaller page."""
    async with helpers.channel(f"127.0.0.1:{small_api.port}", token) as channel:
        stub = TaskServiceStub(channel)
        for _ in range(100):  # 100 payloads of 900 bytes: a page of them is over 64 KiB
            await stub.ScheduleTask(schedule_request(blob="x" * 900))
    client = gateway_of(settings, small_api, grpc_max_message_bytes=SMALL_MESSAGES)

    def list_page() -> httpx.Response:
        with client:
            response: httpx.Response = client.get(
                "/v1/tasks?page_size=100", headers={"authorization": f"Bearer {token}"}
            )
        return response

    response = await asyncio.to_thread(list_page)
    assert response.status_code == 502, response.text[:300]
    assert response.json()["reason"] == "RESPONSE_TOO_LARGE"
    assert "larger than max" not in response.text
