"""Every limit of taskscheduler.core.limits walked through both transports of the running stack:
at the bound accepted, just beyond refused, naming the field (INVALID_ARGUMENT on gRPC, 400 on
REST). A public name of limits.py without a walk here fails the suite, so that a new limit cannot
be forgotten on one transport."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from taskscheduler.core import limits
from taskscheduler.devstack.stack import Stack
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

ONE_BROKER = True  # the limits' refusals, before anything reaches a broker
TENANT = "limits-walk"  # its own tenant: the tasks made here stay out of the other tests' lists
FUTURE = "2100-01-01T00:00:00Z"  # tasks made here wait as SCHEDULED, costing no worker time
DAYS = 86_400

# Not walked, each for its reason: a name here is a decision, not an oversight.
NOT_WALKED = {
    "QUEUE_NAME_RULE": "the text of QUEUE_NAME_PATTERN's refusal, walked with it",
    "MAX_ERROR_MESSAGE_CHARS": "what a worker keeps of a handler's error, not what a caller sends",
    "MAX_BULK_REPORTED": "how many a bulk answer names, not what a caller sends",
    "MAX_FAILURE_GROUPS": "how many error types ListFailureGroups answers, not what a caller sends",
    "BULK_PAGE_SIZE": "how many tasks a bulk action reads at a time (tests/integration/"
    "test_bulk.py acts on three pages)",
    "MAX_PROGRESS_MESSAGE_CHARS": "what a worker keeps of a handler's progress message "
    "(tests/unit/test_progress.py)",
    "PROGRESS_WRITE_INTERVAL_SECONDS": "how often a worker writes progress, not what a caller "
    "sends (tests/unit/test_progress.py)",
    "MAX_TRACEBACK_CHARS": "what a worker keeps of a handler's traceback, not what a caller sends",
    "MAX_METADATA_BYTES": "gRPC's own bound, set on the api so that MAX_TOKEN_LENGTH binds first",
    "MAX_SPAWNED": "what a handler may spawn in one attempt, not what a caller sends "
    "(tests/unit/test_spawning.py walks it)",
}


@dataclass(frozen=True)
class GrpcCall:
    rpc: str
    request: Message
    token: str = ""  # the caller's own when empty


@dataclass(frozen=True)
class RestCall:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    code: str  # "OK", or the gRPC code refusing (its REST status mapped back)
    field: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Walk:
    """One limit walked: `at_bound` accepted (or, with `otherwise`, refused for that other
    reason only), `beyond` refused naming `field` (with `beyond_detail` in its detail)."""

    limit: str
    field: str
    at_bound: Any
    beyond: Any
    grpc: Callable[[Any], GrpcCall] | None
    rest: Callable[[Any], RestCall] | None
    code: str = "INVALID_ARGUMENT"
    otherwise: str = ""
    beyond_detail: str = ""
    grpc_beyond: Any = None
    """A different value beyond the bound on gRPC, where proto3 reads the REST one as unset."""
    not_on: str = ""
    """Why one transport has no call taking this value."""

    @property
    def name(self) -> str:
        return f"{self.limit}:{self.field}"


SOME_ID = "00000000-0000-4000-8000-000000000000"


def unique(length: int, prefix: str = "w") -> str:
    """A fresh lowercase name of exactly `length` characters."""
    start = f"{prefix}{uuid.uuid4().hex}"
    return (start + "a" * length)[:length]


def nested(levels: int) -> dict[str, Any]:
    """Objects nested `levels` deep, the innermost empty."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def grpc_task(**fields: Any) -> GrpcCall:
    return GrpcCall(
        "ScheduleTask",
        json_format.ParseDict(
            {"kind": "demo.echo", "run_at": FUTURE, **fields}, pb.ScheduleTaskRequest()
        ),
    )


def rest_task(**fields: Any) -> RestCall:
    return RestCall("POST", "/v1/tasks", json={"kind": "demo.echo", "run_at": FUTURE, **fields})


def grpc_list(**fields: Any) -> GrpcCall:
    return GrpcCall("ListTasks", json_format.ParseDict(fields, pb.ListTasksRequest()))


def rest_list(**params: Any) -> RestCall:
    return RestCall("GET", "/v1/tasks", params=params)


def grpc_queue(**fields: Any) -> GrpcCall:
    queue = {"name": unique(20), **fields}
    return GrpcCall("CreateQueue", json_format.ParseDict({"queue": queue}, pb.CreateQueueRequest()))


def rest_queue(**fields: Any) -> RestCall:
    return RestCall("POST", "/v1/queues", json={"name": unique(20), **fields})


def grpc_schedule(**fields: Any) -> GrpcCall:
    schedule = {"cron": "0 0 1 1 *", "task": {"kind": "demo.echo"}, "paused": True, **fields}
    return GrpcCall(
        "CreateSchedule", json_format.ParseDict({"schedule": schedule}, pb.CreateScheduleRequest())
    )


def rest_schedule(**fields: Any) -> RestCall:
    body = {"cron": "0 0 1 1 *", "task": {"kind": "demo.echo"}, "paused": True, **fields}
    return RestCall("POST", "/v1/schedules", json=body)


def _step(name: str) -> dict[str, Any]:
    return {"name": name, "task": {"kind": "demo.echo"}, "run_at": FUTURE}


def _steps(count: int) -> list[dict[str, Any]]:
    return [_step(f"s{index}") for index in range(count)]


def grpc_workflow(**fields: Any) -> GrpcCall:
    return GrpcCall("CreateWorkflow", json_format.ParseDict(fields, pb.CreateWorkflowRequest()))


def rest_workflow(**fields: Any) -> RestCall:
    return RestCall("POST", "/v1/workflows", json=fields)


def seconds(value: float) -> str:
    """A protobuf Duration in its JSON form."""
    return f"{value}s"


def _batch(count: int) -> list[dict[str, Any]]:
    return [{"kind": "demo.echo", "run_at": FUTURE} for _ in range(count)]


def _padded_uuid(length: int) -> str:
    """A UUID the api parses, padded with hyphens (which it ignores) to `length` characters."""
    return str(uuid.uuid4()).ljust(length, "-")


MAX_SECONDS = limits.MAX_DURATION.total_seconds()
WALKS = [
    Walk(
        "MAX_KIND_LENGTH",
        "kind",
        "k" * limits.MAX_KIND_LENGTH,
        "k" * (limits.MAX_KIND_LENGTH + 1),
        lambda v: grpc_list(kind=v),
        lambda v: rest_list(kind=v),
    ),
    Walk(
        "MAX_ERROR_TYPE_LENGTH",
        "error_type",
        "e" * limits.MAX_ERROR_TYPE_LENGTH,
        "e" * (limits.MAX_ERROR_TYPE_LENGTH + 1),
        lambda v: grpc_list(error_type=v),
        lambda v: rest_list(error_type=v),
    ),
    Walk(
        "MAX_SEARCH_LENGTH",
        "search",
        "k=" + "v" * (limits.MAX_SEARCH_LENGTH - 2),  # a payload field: no id prefix is that long
        "k=" + "v" * (limits.MAX_SEARCH_LENGTH - 1),
        None,
        lambda v: RestCall("GET", "/dashboard", params={"search": v}),
        not_on="the dashboard's search box; the api bounds each field it becomes",
    ),
    Walk(
        "MAX_REQUEST_ID_LENGTH",
        "request_id",
        limits.MAX_REQUEST_ID_LENGTH,
        limits.MAX_REQUEST_ID_LENGTH + 1,
        lambda n: grpc_task(request_id=unique(n)),
        lambda n: rest_task(request_id=unique(n)),
    ),
    Walk(
        "MAX_CONCURRENCY_KEY_LENGTH",
        "concurrency_key",
        "c" * limits.MAX_CONCURRENCY_KEY_LENGTH,
        "c" * (limits.MAX_CONCURRENCY_KEY_LENGTH + 1),
        lambda v: grpc_task(concurrency_key=v),
        lambda v: rest_task(concurrency_key=v),
    ),
    Walk(
        "MAX_QUEUE_NAME_LENGTH",
        "queue",
        "q" * limits.MAX_QUEUE_NAME_LENGTH,
        "q" * (limits.MAX_QUEUE_NAME_LENGTH + 1),
        lambda v: grpc_list(queue=v),
        lambda v: rest_list(queue=v),
    ),
    Walk(
        "QUEUE_NAME_PATTERN",
        "queue",
        "a0-_z",
        "A0-_z",
        lambda v: grpc_list(queue=v),
        lambda v: rest_list(queue=v),
    ),
    Walk(
        "MAX_CRON_LENGTH",
        "cron",
        "0 0 1 1 *".ljust(limits.MAX_CRON_LENGTH),
        "0 0 1 1 *".ljust(limits.MAX_CRON_LENGTH + 1),
        lambda v: grpc_schedule(cron=v),
        lambda v: rest_schedule(cron=v),
    ),
    Walk(
        "MAX_TIME_ZONE_LENGTH",
        "time_zone",
        "Z" * limits.MAX_TIME_ZONE_LENGTH,
        "Z" * (limits.MAX_TIME_ZONE_LENGTH + 1),
        lambda v: grpc_schedule(time_zone=v),
        lambda v: rest_schedule(time_zone=v),
        otherwise="IANA",  # no zone's name is that long: refused, but not for its length
        beyond_detail="at most",
    ),
    Walk(
        "MAX_DESCRIPTION_LENGTH",
        "description",
        "d" * limits.MAX_DESCRIPTION_LENGTH,
        "d" * (limits.MAX_DESCRIPTION_LENGTH + 1),
        lambda v: grpc_schedule(description=v),
        lambda v: rest_schedule(description=v),
    ),
    Walk(
        "MAX_PAGE_TOKEN_LENGTH",
        "page_token",
        "t" * limits.MAX_PAGE_TOKEN_LENGTH,
        "t" * (limits.MAX_PAGE_TOKEN_LENGTH + 1),
        lambda v: grpc_list(page_token=v),
        lambda v: rest_list(page_token=v),
        otherwise="malformed",  # no token of ours is that long
        beyond_detail="at most",
    ),
    Walk(
        "MAX_FILTER_ID_LENGTH",
        "schedule_id",
        limits.MAX_FILTER_ID_LENGTH,
        limits.MAX_FILTER_ID_LENGTH + 1,
        None,
        lambda n: RestCall("GET", "/dashboard", params={"schedule_id": _padded_uuid(n)}),
        not_on="the dashboard's filter box; the api parses an id of any length",
    ),
    Walk(
        "MAX_BATCH_SIZE",
        "requests",
        limits.MAX_BATCH_SIZE,
        limits.MAX_BATCH_SIZE + 1,
        lambda n: GrpcCall(
            "BatchScheduleTasks",
            json_format.ParseDict({"requests": _batch(n)}, pb.BatchScheduleTasksRequest()),
        ),
        lambda n: RestCall("POST", "/v1/tasks:batchCreate", json={"requests": _batch(n)}),
    ),
    Walk(
        "MAX_BULK_IDS",
        "task_ids",
        limits.MAX_BULK_IDS,
        limits.MAX_BULK_IDS + 1,
        lambda n: GrpcCall(
            "BatchCancelTasks",
            pb.BatchCancelTasksRequest(task_ids=[SOME_ID] * n, dry_run=True),
        ),
        lambda n: RestCall(
            "POST", "/v1/tasks:batchCancel", json={"task_ids": [SOME_ID] * n, "dry_run": True}
        ),
    ),
    Walk(
        "MAX_WORKFLOW_STEPS",
        "steps",
        limits.MAX_WORKFLOW_STEPS,
        limits.MAX_WORKFLOW_STEPS + 1,
        lambda n: grpc_workflow(steps=_steps(n)),
        lambda n: rest_workflow(steps=_steps(n)),
    ),
    Walk(
        "MAX_STEP_NAME_LENGTH",
        "steps[0].name",
        "s" * limits.MAX_STEP_NAME_LENGTH,
        "s" * (limits.MAX_STEP_NAME_LENGTH + 1),
        lambda v: grpc_workflow(steps=[_step(v)]),
        lambda v: rest_workflow(steps=[_step(v)]),
    ),
    Walk(
        "MAX_WORKFLOW_NAME_LENGTH",
        "name",
        "n" * limits.MAX_WORKFLOW_NAME_LENGTH,
        "n" * (limits.MAX_WORKFLOW_NAME_LENGTH + 1),
        lambda v: grpc_workflow(name=v, steps=[_step("only")]),
        lambda v: rest_workflow(name=v, steps=[_step("only")]),
    ),
    Walk(
        "MAX_DEPENDS_ON",
        "depends_on",
        limits.MAX_DEPENDS_ON,
        limits.MAX_DEPENDS_ON + 1,
        lambda n: grpc_task(depends_on=[str(uuid.uuid4()) for _ in range(n)]),
        lambda n: rest_task(depends_on=[str(uuid.uuid4()) for _ in range(n)]),
        otherwise="no task",  # ids of no task of the caller's, refused one by one
    ),
    Walk(
        "MAX_PAGE_SIZE",
        "page_size",
        limits.MAX_PAGE_SIZE,
        limits.MAX_PAGE_SIZE + 1,
        lambda v: grpc_list(page_size=v),
        lambda v: rest_list(page_size=v),
    ),
    Walk(
        "MAX_PAYLOAD_DEPTH",
        "payload",
        limits.MAX_PAYLOAD_DEPTH,
        limits.MAX_PAYLOAD_DEPTH + 1,
        lambda n: grpc_task(payload=nested(n)),
        lambda n: rest_task(payload=nested(n)),
    ),
    Walk(
        "MIN_PRIORITY",
        "priority",
        limits.MIN_PRIORITY,
        limits.MIN_PRIORITY - 1,
        lambda v: grpc_task(priority=v),
        lambda v: rest_task(priority=v),
    ),
    Walk(
        "MAX_PRIORITY",
        "priority",
        limits.MAX_PRIORITY,
        limits.MAX_PRIORITY + 1,
        lambda v: grpc_task(priority=v),
        lambda v: rest_task(priority=v),
    ),
    Walk(
        "MIN_ATTEMPTS",
        "retry_policy.max_attempts",
        limits.MIN_ATTEMPTS,
        limits.MIN_ATTEMPTS - 1,
        lambda v: grpc_task(retry_policy={"max_attempts": v}),
        lambda v: rest_task(retry_policy={"max_attempts": v}),
        grpc_beyond=limits.MIN_ATTEMPTS - 2,  # proto3 sends 0 as no value: the default applies
    ),
    Walk(
        "MAX_ATTEMPTS",
        "retry_policy.max_attempts",
        limits.MAX_ATTEMPTS,
        limits.MAX_ATTEMPTS + 1,
        lambda v: grpc_task(retry_policy={"max_attempts": v}),
        lambda v: rest_task(retry_policy={"max_attempts": v}),
    ),
    Walk(
        "MIN_BACKOFF_MULTIPLIER",
        "retry_policy.backoff_multiplier",
        limits.MIN_BACKOFF_MULTIPLIER,
        limits.MIN_BACKOFF_MULTIPLIER - 0.01,
        lambda v: grpc_task(retry_policy={"backoff_multiplier": v}),
        lambda v: rest_task(retry_policy={"backoff_multiplier": v}),
    ),
    Walk(
        "MAX_BACKOFF_MULTIPLIER",
        "retry_policy.backoff_multiplier",
        limits.MAX_BACKOFF_MULTIPLIER,
        limits.MAX_BACKOFF_MULTIPLIER + 0.01,
        lambda v: grpc_task(retry_policy={"backoff_multiplier": v}),
        lambda v: rest_task(retry_policy={"backoff_multiplier": v}),
    ),
    Walk(
        "MAX_RATE_PER_SECOND",
        "rate_limit.per_second",
        limits.MAX_RATE_PER_SECOND,
        limits.MAX_RATE_PER_SECOND + 0.5,
        lambda v: grpc_queue(rate_limit={"per_second": v}),
        lambda v: rest_queue(rate_limit={"per_second": v}),
    ),
    Walk(
        "MAX_CONCURRENCY",
        "max_concurrent",
        limits.MAX_CONCURRENCY,
        limits.MAX_CONCURRENCY + 1,
        lambda v: grpc_queue(max_concurrent=v),
        lambda v: rest_queue(max_concurrent=v),
    ),
    Walk(
        "MAX_CONCURRENCY",
        "rate_limit.burst",
        limits.MAX_CONCURRENCY,
        limits.MAX_CONCURRENCY + 1,
        lambda v: grpc_queue(rate_limit={"per_second": 1, "burst": v}),
        lambda v: rest_queue(rate_limit={"per_second": 1, "burst": v}),
    ),
    Walk(
        "MAX_DURATION",
        "timeout",
        MAX_SECONDS,
        MAX_SECONDS + 1,
        lambda v: grpc_task(timeout=seconds(v)),
        lambda v: rest_task(timeout=v),
    ),
    Walk(
        "MAX_DURATION",
        "retry_policy.max_backoff",
        MAX_SECONDS,
        MAX_SECONDS + 1,
        lambda v: grpc_task(retry_policy={"max_backoff": seconds(v)}),
        lambda v: rest_task(retry_policy={"max_backoff": v}),
    ),
    Walk(
        "MAX_CATCHUP_WINDOW",
        "catchup_window",
        limits.MAX_CATCHUP_WINDOW.total_seconds(),
        limits.MAX_CATCHUP_WINDOW.total_seconds() + 1,
        lambda v: grpc_schedule(catchup_window=seconds(v)),
        lambda v: rest_schedule(catchup_window=v),
    ),
    Walk(
        "MAX_COUNT_WINDOW",
        "finished_within",
        limits.MAX_COUNT_WINDOW.total_seconds(),
        limits.MAX_COUNT_WINDOW.total_seconds() + 1,
        lambda v: GrpcCall(
            "CountTasks",
            json_format.ParseDict({"finished_within": seconds(v)}, pb.CountTasksRequest()),
        ),
        None,
        not_on="no REST route counts tasks (the dashboard's counts use the api's default)",
    ),
    Walk(
        "MAX_TOKEN_LENGTH",
        "",
        "t" * limits.MAX_TOKEN_LENGTH,
        "t" * (limits.MAX_TOKEN_LENGTH + 1),
        lambda v: GrpcCall("ListTasks", pb.ListTasksRequest(), token=v),
        lambda v: RestCall("GET", "/v1/tasks", headers={"authorization": f"Bearer {v}"}),
        code="UNAUTHENTICATED",
        otherwise="invalid token",  # read, and found not to be a JWT
        beyond_detail="too long",
    ),
]


def public_limits() -> set[str]:
    return {name for name in vars(limits) if name.isupper() and not name.startswith("_")}


def test_every_limit_is_walked_or_excused() -> None:
    walked = {walk.limit for walk in WALKS}
    assert walked.isdisjoint(NOT_WALKED)
    assert walked | set(NOT_WALKED) == public_limits()


def test_a_walk_without_a_transport_says_why() -> None:
    for walk in WALKS:
        assert (walk.grpc is None or walk.rest is None) == bool(walk.not_on), walk.name


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    return stack.token(tenant=TENANT)


@pytest.fixture(scope="module")
def stub(stack: Stack) -> Iterator[TaskServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{stack.config.grpc_port}") as channel:
        yield TaskServiceStub(channel)


@pytest.fixture(scope="module")
def rest(stack: Stack, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.config.gateway_port}",
        timeout=60,
        headers={"authorization": f"Bearer {token}"},
    ) as client:
        yield client


def over_grpc(stub: TaskServiceStub, token: str, call: GrpcCall) -> Outcome:
    authorization = f"Bearer {call.token or token}"
    try:
        getattr(stub, call.rpc)(
            call.request, metadata=(("authorization", authorization),), timeout=60
        )
    except grpc.RpcError as error:
        assert isinstance(error, grpc.Call)
        return Outcome(error.code().name, _field_of(error), error.details() or "")
    return Outcome("OK")


def _field_of(error: grpc.Call) -> str:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            info = error_details_pb2.ErrorInfo()
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Unpack(info):
                    return str(info.metadata.get("field", ""))
    return ""


REST_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED"}


def over_rest(client: httpx.Client, call: RestCall) -> Outcome:
    response = client.request(
        call.method, call.path, json=call.json, params=call.params, headers=call.headers
    )
    if response.is_success:
        return Outcome("OK")
    body = response.json()
    return Outcome(
        REST_CODES.get(response.status_code, str(response.status_code)),
        body.get("field", ""),
        body["detail"],
    )


def _check_at_bound(walk: Walk, outcome: Outcome, transport: str) -> None:
    where = f"{walk.name} at its bound over {transport}"
    if walk.otherwise:
        assert walk.otherwise in outcome.detail, (where, outcome)
        assert not walk.beyond_detail or walk.beyond_detail not in outcome.detail, (where, outcome)
    else:
        assert outcome.code == "OK", (where, outcome)


def _check_beyond(walk: Walk, outcome: Outcome, transport: str) -> None:
    where = f"{walk.name} beyond its bound over {transport}"
    assert outcome.code == walk.code, (where, outcome)
    # A payload's refusal may name the path inside it (payload.a.a...).
    assert outcome.field == walk.field or outcome.field.startswith(walk.field + "."), (
        where,
        outcome,
    )
    assert walk.beyond_detail in outcome.detail, (where, outcome)


@pytest.mark.parametrize("walk", WALKS, ids=lambda walk: walk.name)
def test_a_limit_is_the_same_over_grpc_and_rest(
    walk: Walk, stub: TaskServiceStub, token: str, rest: httpx.Client
) -> None:
    if walk.grpc is not None:
        _check_at_bound(walk, over_grpc(stub, token, walk.grpc(walk.at_bound)), "gRPC")
        beyond = walk.beyond if walk.grpc_beyond is None else walk.grpc_beyond
        _check_beyond(walk, over_grpc(stub, token, walk.grpc(beyond)), "gRPC")
    if walk.rest is not None:
        _check_at_bound(walk, over_rest(rest, walk.rest(walk.at_bound)), "REST")
        _check_beyond(walk, over_rest(rest, walk.rest(walk.beyond)), "REST")
