"""The api over TLS and mutual TLS, and the gateway connecting to it over TLS, with
certificates made in the test."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from gateway.app import create_app
from services.api.server import RunningApi, start_api
from taskscheduler.settings import Settings
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.certificates import Pki, make_pki
from tests.servers import process_env


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
async def mtls_api(settings: Settings, pki: Pki) -> AsyncIterator[RunningApi]:
    update = {
        "tls_cert_file": pki.server_cert,
        "tls_key_file": pki.server_key,
        "tls_client_ca_file": pki.ca,
    }
    api = await start_api(settings.model_copy(update=update))
    yield api
    await api.stop()


async def list_over(channel: grpc.aio.Channel, token: str) -> grpc.StatusCode:
    stub = TaskServiceStub(channel)
    try:
        await stub.ListTasks(
            pb.ListTasksRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=5
        )
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_mutual_tls(mtls_api: RunningApi, pki: Pki, token: str) -> None:
    address = f"127.0.0.1:{mtls_api.port}"
    ca = pki.ca.read_bytes()
    with_client_cert = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=pki.client_key.read_bytes(),
        certificate_chain=pki.client_cert.read_bytes(),
    )
    async with grpc.aio.secure_channel(address, with_client_cert) as channel:
        assert await list_over(channel, token) is grpc.StatusCode.OK
    without_client_cert = grpc.ssl_channel_credentials(root_certificates=ca)
    async with grpc.aio.secure_channel(address, without_client_cert) as channel:
        assert await list_over(channel, token) is grpc.StatusCode.UNAVAILABLE
    async with grpc.aio.insecure_channel(address) as channel:
        assert await list_over(channel, token) is grpc.StatusCode.UNAVAILABLE


def get_tasks(gateway: FastAPI, token: str) -> httpx.Response:
    with TestClient(gateway, headers={"authorization": f"Bearer {token}"}) as client:
        response: httpx.Response = client.get("/v1/tasks")
    return response


async def test_the_gateway_connects_with_mutual_tls(
    mtls_api: RunningApi, settings: Settings, pki: Pki, token: str
) -> None:
    gateway_settings = settings.model_copy(
        update={
            "api_address": f"127.0.0.1:{mtls_api.port}",
            "api_tls_ca_file": pki.ca,
            "api_tls_cert_file": pki.client_cert,
            "api_tls_key_file": pki.client_key,
        }
    )
    response = await asyncio.to_thread(get_tasks, create_app(gateway_settings), token)
    assert response.status_code == 200


def test_a_certificate_needs_its_key(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="go together"):
        Settings(tls_cert_file=pki.server_cert)


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # no key at all
        {"jwt_secret": "secret"},  # a well-known default
        {"jwt_secret": "short-but-not-default"},
        {"jwt_secret": "x" * 40, "fault_crash_before_publish_file": "/tmp/crash"},
    ],
)
def test_a_production_start_refuses_unsafe_settings(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(environment="production", **overrides)  # type: ignore[arg-type]


def test_a_production_start_accepts_a_real_secret() -> None:
    assert Settings(environment="production", jwt_secret="x" * 40).jwt_secret


def test_a_refused_secret_is_not_printed_back() -> None:
    secret = "tail-of-a-real-secret"
    with pytest.raises(ValidationError) as excinfo:
        Settings(environment="production", jwt_secret=secret)
    assert "TASKSCHED_JWT_SECRET must be" in str(excinfo.value)
    assert secret not in str(excinfo.value) and secret not in repr(excinfo.value)


def test_a_production_start_with_a_short_secret_exits_without_printing_it(
    settings: Settings,
) -> None:
    secret = "short-" + uuid.uuid4().hex[:8]
    environment = process_env(settings) | {
        "TASKSCHED_ENVIRONMENT": "production",
        "TASKSCHED_JWT_SECRET": secret,
    }
    started = subprocess.run(
        [sys.executable, "-m", "services.api"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "TASKSCHED_JWT_SECRET must be" in started.stderr
    assert secret not in started.stdout + started.stderr


@pytest.mark.parametrize("environment", ["prod", "Production", "staging"])
def test_an_unknown_environment_is_refused(environment: str) -> None:
    with pytest.raises(ValidationError, match="environment"):
        Settings(environment=environment, jwt_secret="x" * 40)


@pytest.fixture(scope="module")
async def tls_api(settings: Settings, pki: Pki) -> AsyncIterator[RunningApi]:
    """TLS without client certificates."""
    update = {"tls_cert_file": pki.server_cert, "tls_key_file": pki.server_key}
    api = await start_api(settings.model_copy(update=update))
    yield api
    await api.stop()


async def test_plain_tls(tls_api: RunningApi, pki: Pki, token: str) -> None:
    address = f"127.0.0.1:{tls_api.port}"
    trusting = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    async with grpc.aio.secure_channel(address, trusting) as channel:
        assert await list_over(channel, token) is grpc.StatusCode.OK
    async with grpc.aio.secure_channel(address, grpc.ssl_channel_credentials()) as channel:
        assert await list_over(channel, token) is grpc.StatusCode.UNAVAILABLE  # unknown CA
    async with grpc.aio.insecure_channel(address) as channel:
        assert await list_over(channel, token) is grpc.StatusCode.UNAVAILABLE


async def test_the_gateway_connects_over_tls_without_a_client_certificate(
    tls_api: RunningApi, settings: Settings, pki: Pki, token: str
) -> None:
    gateway_settings = settings.model_copy(
        update={"api_address": f"127.0.0.1:{tls_api.port}", "api_tls_ca_file": pki.ca}
    )
    response = await asyncio.to_thread(get_tasks, create_app(gateway_settings), token)
    assert response.status_code == 200
