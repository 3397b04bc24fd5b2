"""Authentication, tenant isolation (BOLA), scopes and rate limits, on the gRPC api."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from gateway.app import create_app
from services.api.server import RunningApi, start_api
from taskscheduler.devstack.embedded import free_port
from taskscheduler.settings import Settings
from taskscheduler.tokens import mint_token
from taskscheduler.v1 import queue_pb2, schedule_pb2, task_pb2, workflow_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests import helpers
from tests.conftest import TEST_SECRET
from tests.helpers import Ids, request

ISSUER = "https://issuer.test"
AUDIENCE = "taskscheduler-test"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "tenant": "acme",
        "scope": "tasks:read tasks:write",
        "iat": now,
        "exp": now + 600,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def unsigned(payload: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def public_key_file(rsa_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "public.pem"
    path.write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


async def started(settings: Settings) -> AsyncIterator[RunningApi]:
    api = await start_api(settings)
    yield api
    await api.stop()


@pytest.fixture(scope="module")
async def hs_api(settings: Settings) -> AsyncIterator[RunningApi]:
    """HS256 with issuer and audience checked."""
    update = {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}
    async for api in started(settings.model_copy(update=update)):
        yield api


@pytest.fixture(scope="module")
async def rs_api(settings: Settings, public_key_file: Path) -> AsyncIterator[RunningApi]:
    """RS256 with a public key file."""
    update = {"jwt_secret": None, "jwt_public_key_file": public_key_file}
    async for api in started(settings.model_copy(update=update)):
        yield api


async def call_with(api: RunningApi, token: str | None, **metadata: str) -> grpc.StatusCode:
    pairs = tuple(metadata.items())
    if token is not None:
        pairs += (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as channel:
        stub = TaskServiceStub(channel)
        try:
            await stub.ListTasks(pb.ListTasksRequest(), metadata=pairs)
        except grpc.aio.AioRpcError as error:
            assert TEST_SECRET not in (error.details() or "")
            if token:
                assert token not in (error.details() or "")
            return error.code()
    return grpc.StatusCode.OK


async def test_a_valid_token_is_accepted(hs_api: RunningApi) -> None:
    assert await call_with(hs_api, jwt.encode(claims(), TEST_SECRET)) is grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("name", "make_token"),
    [
        ("missing", lambda: None),
        ("alg none", lambda: unsigned(claims())),
        ("wrong signature", lambda: jwt.encode(claims(), "another-secret-" + "y" * 40)),
        ("expired", lambda: jwt.encode(claims(exp=int(time.time()) - 600), TEST_SECRET)),
        ("not yet valid", lambda: jwt.encode(claims(nbf=int(time.time()) + 600), TEST_SECRET)),
        ("no exp", lambda: jwt.encode(claims(exp=None), TEST_SECRET)),
        ("wrong issuer", lambda: jwt.encode(claims(iss="https://evil.test"), TEST_SECRET)),
        ("wrong audience", lambda: jwt.encode(claims(aud="someone-else"), TEST_SECRET)),
        ("no tenant", lambda: jwt.encode(claims(tenant=None), TEST_SECRET)),
        ("NUL in tenant", lambda: jwt.encode(claims(tenant="a\x00b"), TEST_SECRET)),
        ("garbage", lambda: "not.a.token"),
    ],
)
async def test_rejected_tokens_are_unauthenticated(
    hs_api: RunningApi, name: str, make_token: Any
) -> None:
    assert await call_with(hs_api, make_token()) is grpc.StatusCode.UNAUTHENTICATED


async def test_a_non_bearer_scheme_is_unauthenticated(hs_api: RunningApi) -> None:
    code = await call_with(hs_api, None, authorization="Basic dXNlcjpwYXNz")
    assert code is grpc.StatusCode.UNAUTHENTICATED


async def test_rs256_with_a_public_key(rs_api: RunningApi, rsa_key: rsa.RSAPrivateKey) -> None:
    good = jwt.encode(claims(), rsa_key, algorithm="RS256")
    assert await call_with(rs_api, good) is grpc.StatusCode.OK
    # The classic confusion: HS256 signed with the RSA public key as the shared secret.
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = unsigned_hs256(claims(), public_pem)
    assert await call_with(rs_api, forged) is grpc.StatusCode.UNAUTHENTICATED
    other = ec.generate_private_key(ec.SECP256R1())
    wrong_key = jwt.encode(claims(), other, algorithm="ES256")
    assert await call_with(rs_api, wrong_key) is grpc.StatusCode.UNAUTHENTICATED


def unsigned_hs256(payload: dict[str, Any], key: bytes) -> str:
    """HS256 by hand: PyJWT itself refuses to use a PEM key as an HMAC secret."""
    import hashlib
    import hmac

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    signing_input = (
        part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        + "."
        + part(json.dumps(payload).encode())
    )
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"


# -- tenants and scopes ------------------------------------------------------------------------


async def test_another_tenants_task_answers_exactly_as_an_unknown_id(api: RunningApi) -> None:
    address = f"127.0.0.1:{api.port}"
    async with (
        helpers.channel(address, mint_token(TEST_SECRET, "alpha")) as alpha_channel,
        helpers.channel(address, mint_token(TEST_SECRET, "beta")) as beta_channel,
    ):
        alpha, beta = TaskServiceStub(alpha_channel), TaskServiceStub(beta_channel)
        message = request("demo.echo", run_in=None)
        message.request_id = "shared-key"
        message.run_at.GetCurrentTime()
        message.run_at.seconds += 3600
        task = (await alpha.ScheduleTask(message)).task
        unknown = str(uuid.uuid4())
        for task_id in (task.id, unknown):
            for call in (
                beta.GetTask(pb.GetTaskRequest(task_id=task_id)),
                beta.CancelTask(pb.CancelTaskRequest(task_id=task_id)),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as excinfo:
                    await call
                assert excinfo.value.code() is grpc.StatusCode.NOT_FOUND
                assert excinfo.value.details() == f"task {task_id} not found"
            with pytest.raises(grpc.aio.AioRpcError) as excinfo:
                await beta.StreamStatus(pb.StreamStatusRequest(task_id=task_id)).read()
            assert excinfo.value.code() is grpc.StatusCode.NOT_FOUND
        listed = await beta.ListTasks(pb.ListTasksRequest(page_size=1000))
        assert task.id not in {t.id for t in listed.tasks}
        # idempotency keys are per tenant: beta's same key makes beta's own task
        beta_task = (await beta.ScheduleTask(message)).task
        assert beta_task.id != task.id
        assert (await alpha.GetTask(pb.GetTaskRequest(task_id=task.id))).task.status


async def test_a_read_only_token_cannot_schedule_or_cancel(api: RunningApi, token: str) -> None:
    address = f"127.0.0.1:{api.port}"
    reader_token = mint_token(TEST_SECRET, "tenant-a", scopes=["tasks:read"])
    async with (
        helpers.channel(address, token) as writer_channel,
        helpers.channel(address, reader_token) as reader_channel,
    ):
        writer, reader = TaskServiceStub(writer_channel), TaskServiceStub(reader_channel)
        task = (await writer.ScheduleTask(request("demo.echo"))).task
        for call in (
            reader.ScheduleTask(request("demo.echo")),
            reader.CancelTask(pb.CancelTaskRequest(task_id=task.id)),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as excinfo:
                await call
            assert excinfo.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert (await reader.GetTask(pb.GetTaskRequest(task_id=task.id))).task.id == task.id


# -- rate limits -----------------------------------------------------------------------------


def retry_delay(error: grpc.aio.AioRpcError) -> float:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    seconds: float = info.retry_delay.ToTimedelta().total_seconds()
                    return seconds
    raise AssertionError("no RetryInfo detail")


@pytest.fixture(scope="module")
async def limited_api(settings: Settings) -> AsyncIterator[RunningApi]:
    update = {"rate_limit_rps": 1.0, "rate_limit_burst": 3}
    async for api in started(settings.model_copy(update=update)):
        yield api


async def test_burst_plus_one_is_resource_exhausted_and_others_are_not_slowed(
    limited_api: RunningApi,
) -> None:
    address = f"127.0.0.1:{limited_api.port}"
    tenant = f"busy-{uuid.uuid4().hex[:6]}"
    async with (
        helpers.channel(address, mint_token(TEST_SECRET, tenant)) as busy_channel,
        helpers.channel(address, mint_token(TEST_SECRET, tenant + "-other")) as other_channel,
    ):
        busy, other = TaskServiceStub(busy_channel), TaskServiceStub(other_channel)
        for _ in range(3):
            await busy.ListTasks(pb.ListTasksRequest())
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            await busy.ListTasks(pb.ListTasksRequest())
        assert excinfo.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert 0 < retry_delay(excinfo.value) <= 1.0
        for _ in range(3):
            await other.ListTasks(pb.ListTasksRequest())


@pytest.mark.parametrize(("fail_open", "expected"), [(True, None), (False, "UNAVAILABLE")])
async def test_an_unreachable_rate_limiter_fails_open_or_closed_as_configured(
    settings: Settings, token: str, fail_open: bool, expected: str | None
) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    limited = settings.model_copy(
        update={"rate_limit_fail_open": fail_open, "rate_limit_redis_url": unreachable}
    )
    async for running in started(limited):
        async with helpers.channel(f"127.0.0.1:{running.port}", token) as channel:
            stub = TaskServiceStub(channel)
            try:
                await stub.ListTasks(pb.ListTasksRequest())
                outcome = None
            except grpc.aio.AioRpcError as error:
                outcome = error.code().name
                assert "rate limiter is unavailable" in (error.details() or "")
        assert outcome == expected


@pytest.fixture(scope="module")
async def jwks_api(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[RunningApi, ec.EllipticCurvePrivateKey]]:
    """ES256 with a JWKS file naming the key by `kid`."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk | {"kid": "key-1", "use": "sig"}]}))
    update = {"jwt_secret": None, "jwt_jwks_file": path}
    async for api in started(settings.model_copy(update=update)):
        yield api, key


async def test_es256_with_a_jwks_file(
    jwks_api: tuple[RunningApi, ec.EllipticCurvePrivateKey],
) -> None:
    api, key = jwks_api
    payload = claims(iss=None, aud=None)
    good = jwt.encode(payload, key, algorithm="ES256", headers={"kid": "key-1"})
    assert await call_with(api, good) is grpc.StatusCode.OK
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(payload, stranger, algorithm="ES256", headers={"kid": "key-1"})
    assert await call_with(api, forged) is grpc.StatusCode.UNAUTHENTICATED


def rest_calls(gateway: FastAPI, token: str | None, calls: int) -> list[httpx.Response]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    with TestClient(gateway, headers=headers) as client:
        return [client.get("/v1/tasks") for _ in range(calls)]


async def test_rest_answers_401_with_www_authenticate_and_429_with_retry_after(
    limited_api: RunningApi, settings: Settings
) -> None:
    gateway = create_app(
        settings.model_copy(update={"api_address": f"127.0.0.1:{limited_api.port}"})
    )
    [anonymous] = await asyncio.to_thread(rest_calls, gateway, None, 1)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.headers["content-type"] == "application/problem+json"
    token = mint_token(TEST_SECRET, f"rest-{uuid.uuid4().hex[:6]}")
    responses = await asyncio.to_thread(rest_calls, gateway, token, 4)
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert int(responses[-1].headers["retry-after"]) >= 1
    assert responses[-1].json()["reason"] == "RATE_LIMITED"


# -- every RPC: tenants and scopes -------------------------------------------------------------


def _later(queue: str) -> pb.ScheduleTaskRequest:
    message = pb.ScheduleTaskRequest(kind="demo.echo", queue=queue)
    message.run_at.GetCurrentTime()
    message.run_at.seconds += 3600
    return message


def _template(queue: str) -> schedule_pb2.Schedule:
    return schedule_pb2.Schedule(
        cron="@daily", task=schedule_pb2.TaskTemplate(kind="demo.echo", queue=queue)
    )


def _workflow(queue: str) -> pb.CreateWorkflowRequest:
    """Two steps that wait: the first an hour, the second for the first."""
    later = timestamp_pb2.Timestamp()
    later.GetCurrentTime()
    later.seconds += 3600
    return pb.CreateWorkflowRequest(
        steps=[
            workflow_pb2.WorkflowStepSpec(
                name="first",
                task=schedule_pb2.TaskTemplate(kind="demo.echo", queue=queue),
                run_at=later,
            ),
            workflow_pb2.WorkflowStepSpec(
                name="second",
                task=schedule_pb2.TaskTemplate(kind="demo.echo", queue=queue),
                depends_on=["first"],
            ),
        ]
    )


READ, WRITE = "tasks:read", "tasks:write"
LIST_CALLS = frozenset({"ListTasks", "CountTasks", "ListQueues", "ListSchedules", "ListWorkflows"})
STREAMS = frozenset({"StreamStatus", "StreamWorkflow"})
# Each RPC: the scope it needs, and its request naming the resources `ids`.
EVERY_RPC: dict[str, tuple[str, Callable[[Ids], Message]]] = {
    "ScheduleTask": (WRITE, lambda ids: _later(ids.queue)),
    "GetTask": (READ, lambda ids: pb.GetTaskRequest(task_id=ids.task)),
    "StreamStatus": (READ, lambda ids: pb.StreamStatusRequest(task_id=ids.task)),
    "ListTasks": (READ, lambda ids: pb.ListTasksRequest(page_size=1000)),
    "CancelTask": (WRITE, lambda ids: pb.CancelTaskRequest(task_id=ids.task)),
    "BatchScheduleTasks": (
        WRITE,
        lambda ids: pb.BatchScheduleTasksRequest(requests=[_later(ids.queue)]),
    ),
    "RetryTask": (WRITE, lambda ids: pb.RetryTaskRequest(task_id=ids.task)),
    "CountTasks": (READ, lambda ids: pb.CountTasksRequest()),
    "GetQueue": (READ, lambda ids: pb.GetQueueRequest(name=ids.queue)),
    "ListQueues": (READ, lambda ids: pb.ListQueuesRequest(page_size=1000)),
    "UpdateQueue": (
        WRITE,
        lambda ids: pb.UpdateQueueRequest(
            queue=queue_pb2.Queue(name=ids.queue, max_concurrent=3),
            update_mask=field_mask_pb2.FieldMask(paths=["max_concurrent"]),
        ),
    ),
    "DeleteQueue": (WRITE, lambda ids: pb.DeleteQueueRequest(name=ids.queue)),
    "PauseQueue": (WRITE, lambda ids: pb.PauseQueueRequest(name=ids.queue)),
    "ResumeQueue": (WRITE, lambda ids: pb.ResumeQueueRequest(name=ids.queue)),
    "PurgeQueue": (WRITE, lambda ids: pb.PurgeQueueRequest(name=ids.queue)),
    "CreateSchedule": (WRITE, lambda ids: pb.CreateScheduleRequest(schedule=_template(ids.queue))),
    "GetSchedule": (READ, lambda ids: pb.GetScheduleRequest(id=ids.schedule)),
    "ListSchedules": (READ, lambda ids: pb.ListSchedulesRequest(page_size=1000)),
    "UpdateSchedule": (
        WRITE,
        lambda ids: pb.UpdateScheduleRequest(
            schedule=schedule_pb2.Schedule(id=ids.schedule, description="taken over"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
    ),
    "DeleteSchedule": (WRITE, lambda ids: pb.DeleteScheduleRequest(id=ids.schedule)),
    "PauseSchedule": (WRITE, lambda ids: pb.PauseScheduleRequest(id=ids.schedule)),
    "ResumeSchedule": (WRITE, lambda ids: pb.ResumeScheduleRequest(id=ids.schedule)),
    "TriggerSchedule": (WRITE, lambda ids: pb.TriggerScheduleRequest(id=ids.schedule)),
    "CreateWorkflow": (WRITE, lambda ids: _workflow(ids.queue)),
    "GetWorkflow": (READ, lambda ids: pb.GetWorkflowRequest(workflow_id=ids.workflow)),
    "ListWorkflows": (READ, lambda ids: pb.ListWorkflowsRequest(page_size=1000)),
    "CancelWorkflow": (WRITE, lambda ids: pb.CancelWorkflowRequest(workflow_id=ids.workflow)),
    "StreamWorkflow": (READ, lambda ids: pb.StreamWorkflowRequest(workflow_id=ids.workflow)),
    # Every tenant sees the fleet; the ids of running tasks are its own (test_workers.py).
    "ListWorkers": (READ, lambda ids: pb.ListWorkersRequest()),
    "ExplainTask": (READ, lambda ids: pb.ExplainTaskRequest(task_id=ids.task)),
    # OK for any id: the answer names another tenant's task as not found (test_bulk.py), and
    # assert_untouched sees the owner's task still waiting.
    "BatchCancelTasks": (WRITE, lambda ids: pb.BatchCancelTasksRequest(task_ids=[ids.task])),
    "BatchRetryTasks": (WRITE, lambda ids: pb.BatchRetryTasksRequest(task_ids=[ids.task])),
    # OK and empty for an intruder: what the caller's own tasks make (test_insights.py shows
    # another tenant's failures and activity left out).
    "ListFailureGroups": (READ, lambda ids: pb.ListFailureGroupsRequest(queue=ids.queue)),
    "GetActivity": (READ, lambda ids: pb.GetActivityRequest(queue=ids.queue)),
    # Last: it makes the intruder a queue of the owner's queue's name (its own, in its tenant).
    "CreateQueue": (
        WRITE,
        lambda ids: pb.CreateQueueRequest(queue=queue_pb2.Queue(name=ids.queue)),
    ),
}


def test_the_table_names_every_rpc_of_the_service() -> None:
    service = pb.DESCRIPTOR.services_by_name["TaskService"]
    assert set(EVERY_RPC) == {method.name for method in service.methods}


Outcome = tuple[str, str, str, str]


async def outcome(stub: TaskServiceStub, method: str, message: Message, ids: Ids) -> Outcome:
    """(code, message, reason, field) of a call, its ids replaced by placeholders."""
    try:
        if method in STREAMS:
            await getattr(stub, method)(message).read()
        else:
            await getattr(stub, method)(message)
    except grpc.aio.AioRpcError as error:
        info = _error_info(error)
        return (
            error.code().name,
            ids.hidden(error.details() or ""),
            info.reason if info else "",
            info.metadata.get("field", "") if info else "",
        )
    return ("OK", "", "", "")


def _error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo | None:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    return None


@dataclass
class Owner:
    """A tenant with a queue, a waiting task in it and a schedule."""

    tenant: str
    stub: TaskServiceStub
    ids: Ids


@pytest.fixture
async def owner(api: RunningApi) -> AsyncIterator[Owner]:
    tenant = f"owner-{uuid.uuid4().hex[:8]}"
    async with helpers.channel(f"127.0.0.1:{api.port}", mint_token(TEST_SECRET, tenant)) as channel:
        stub = TaskServiceStub(channel)
        queue = f"q-{uuid.uuid4().hex[:8]}"
        await stub.CreateQueue(
            pb.CreateQueueRequest(queue=queue_pb2.Queue(name=queue, max_concurrent=7))
        )
        task = (await stub.ScheduleTask(_later(queue))).task
        schedule = (
            await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=_template(queue)))
        ).schedule
        workflow = (await stub.CreateWorkflow(_workflow(queue))).workflow
        yield Owner(tenant, stub, Ids(task.id, queue, schedule.id, workflow.id))


async def test_another_tenants_resources_answer_as_unknown_ones_on_every_rpc(
    api: RunningApi, owner: Owner
) -> None:
    intruder_token = mint_token(TEST_SECRET, f"intruder-{uuid.uuid4().hex[:8]}")
    async with helpers.channel(f"127.0.0.1:{api.port}", intruder_token) as channel:
        intruder = TaskServiceStub(channel)
        for method in (name for name in EVERY_RPC if name in LIST_CALLS):
            await assert_lists_none_of(intruder, method, owner)
        for method, (_, make) in EVERY_RPC.items():
            if method in LIST_CALLS:
                continue
            unknown = Ids.unknown()
            theirs = await outcome(intruder, method, make(owner.ids), owner.ids)
            nobodys = await outcome(intruder, method, make(unknown), unknown)
            assert theirs == nobodys, method
            assert theirs[0] in ("NOT_FOUND", "INVALID_ARGUMENT", "OK"), (method, theirs)
    await assert_untouched(owner)


async def assert_lists_none_of(intruder: TaskServiceStub, method: str, owner: Owner) -> None:
    _, make = EVERY_RPC[method]
    message = make(owner.ids)
    seen, own = [await getattr(stub, method)(message) for stub in (intruder, owner.stub)]
    if method == "ListTasks":
        assert owner.ids.task in {t.id for t in own.tasks}
        assert owner.ids.task not in {t.id for t in seen.tasks}
    elif method == "ListQueues":
        assert owner.ids.queue in {q.name for q in own.queues}
        assert owner.ids.queue not in {q.name for q in seen.queues}
    elif method == "ListSchedules":
        assert owner.ids.schedule in {s.id for s in own.schedules}
        assert owner.ids.schedule not in {s.id for s in seen.schedules}
    elif method == "ListWorkflows":
        assert owner.ids.workflow in {w.id for w in own.workflows}
        assert owner.ids.workflow not in {w.id for w in seen.workflows}
    else:
        assert sum(count.count for count in own.counts) >= 1
        assert sum(count.count for count in seen.counts) == 0


async def assert_untouched(owner: Owner) -> None:
    stub, ids = owner.stub, owner.ids
    task = (await stub.GetTask(pb.GetTaskRequest(task_id=ids.task))).task
    assert task.status == task_pb2.TASK_STATUS_SCHEDULED
    queue = (await stub.GetQueue(pb.GetQueueRequest(name=ids.queue))).queue
    assert (queue.max_concurrent, queue.state) == (7, queue_pb2.QUEUE_STATE_RUNNING)
    schedule = (await stub.GetSchedule(pb.GetScheduleRequest(id=ids.schedule))).schedule
    assert (schedule.description, schedule.paused, schedule.last_task_id) == ("", False, "")
    workflow = (await stub.GetWorkflow(pb.GetWorkflowRequest(workflow_id=ids.workflow))).workflow
    assert workflow.status == workflow_pb2.WORKFLOW_STATUS_RUNNING
    assert [step.status for step in workflow.steps] == [
        task_pb2.TASK_STATUS_SCHEDULED,
        task_pb2.TASK_STATUS_BLOCKED,
    ]


@pytest.mark.parametrize(
    "scopes",
    [[READ], [WRITE], []],
    ids=["read-only: every write refused", "write-only: every read refused", "no scope"],
)
async def test_every_rpc_checks_its_scope_first(
    api: RunningApi, owner: Owner, scopes: list[str]
) -> None:
    token = mint_token(TEST_SECRET, owner.tenant, scopes=scopes)
    async with helpers.channel(f"127.0.0.1:{api.port}", token) as channel:
        stub = TaskServiceStub(channel)
        for method, (scope, make) in EVERY_RPC.items():
            if scope in scopes:
                continue
            answer = await outcome(stub, method, make(owner.ids), owner.ids)
            expected = ("PERMISSION_DENIED", f"this operation needs the {scope} scope")
            assert answer[:3] == (*expected, "MISSING_SCOPE"), method
    await assert_untouched(owner)


async def test_a_write_only_token_may_make_every_write(api: RunningApi, owner: Owner) -> None:
    """Writes need tasks:write alone: none of them reads on the caller's behalf first."""
    token = mint_token(TEST_SECRET, owner.tenant, scopes=[WRITE])
    async with helpers.channel(f"127.0.0.1:{api.port}", token) as channel:
        stub = TaskServiceStub(channel)
        finished = (await stub.CancelTask(pb.CancelTaskRequest(task_id=owner.ids.task))).task
        retried = (await stub.RetryTask(pb.RetryTaskRequest(task_id=finished.id))).task
        assert retried.id != finished.id
        await stub.PauseSchedule(pb.PauseScheduleRequest(id=owner.ids.schedule))
        resumed = await stub.ResumeSchedule(pb.ResumeScheduleRequest(id=owner.ids.schedule))
        assert not resumed.schedule.paused
        fired = await stub.TriggerSchedule(pb.TriggerScheduleRequest(id=owner.ids.schedule))
        assert fired.task.schedule_id == owner.ids.schedule
        for method, (scope, make) in EVERY_RPC.items():
            if scope == WRITE:
                answer = await outcome(stub, method, make(Ids.unknown()), Ids.unknown())
                assert answer[0] != "PERMISSION_DENIED", (method, answer)


async def test_unparsable_bytes_without_a_token_are_unauthenticated(api: RunningApi) -> None:
    """The caller is known before a byte of the request is parsed."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as channel:
        raw = channel.unary_unary(
            "/taskscheduler.v1.TaskService/ScheduleTask",
            request_serializer=lambda data: data,
            response_deserializer=lambda data: data,
        )
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            await raw(b"\xff\xff\xff\xff")
        assert excinfo.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            token = mint_token(TEST_SECRET, "tenant-a")
            await raw(b"\xff\xff\xff\xff", metadata=(("authorization", f"Bearer {token}"),))
        assert excinfo.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_a_token_expired_within_the_leeway_is_accepted_beyond_it_refused(
    hs_api: RunningApi,
) -> None:
    now = int(time.time())
    just_expired = jwt.encode(claims(exp=now - 5), TEST_SECRET)
    assert await call_with(hs_api, just_expired) is grpc.StatusCode.OK
    long_expired = jwt.encode(claims(exp=now - 60), TEST_SECRET)  # the leeway is 30 s
    assert await call_with(hs_api, long_expired) is grpc.StatusCode.UNAUTHENTICATED
