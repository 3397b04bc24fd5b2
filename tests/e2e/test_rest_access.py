"""Every REST route of the gateway, through the stack: another tenant's resources answer as
unknown ones, each route checks its scope, and no token or secret reaches the logs."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest

from taskscheduler.devstack.stack import Stack
from taskscheduler.tokens import mint_token
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.helpers import Ids

pytestmark = pytest.mark.e2e
ONE_BROKER = True  # tokens, scopes and tenants at the gateway and the api

READ, WRITE = "tasks:read", "tasks:write"
LATER = "2100-01-01T00:00:00Z"


def _task(ids: Ids) -> dict[str, Any]:
    return {"kind": "demo.echo", "queue": ids.queue, "run_at": LATER}


Body = Callable[[Ids], Any] | None


def _workflow(ids: Ids) -> dict[str, Any]:
    return _workflow_in(ids.queue)


def _workflow_in(queue: str) -> dict[str, Any]:
    """Two steps that wait: the first until LATER, the second for the first."""
    task = {"kind": "demo.echo", "queue": queue}
    return {
        "steps": [
            {"name": "first", "task": task, "run_at": LATER},
            {"name": "second", "task": task, "depends_on": ["first"]},
        ]
    }


LIST_ROUTES = frozenset(
    {
        ("GET", "/v1/tasks"),
        ("GET", "/v1/queues"),
        ("GET", "/v1/schedules"),
        ("GET", "/v1/workflows"),
    }
)
# What every tenant sees alike: the fleet (test_workers.py checks the task ids it shows).
SHARED_ROUTES = frozenset({("GET", "/v1/workers")})
# 200 for any id: the answer names another tenant's task as not found, as an unknown one.
BULK_ROUTES = frozenset({("POST", "/v1/tasks:batchCancel"), ("POST", "/v1/tasks:batchRetry")})
# 200 with what the caller's own tasks make: nothing, for an intruder (test_insights.py shows
# another tenant's failures and activity left out).
OVERVIEW_ROUTES = frozenset({("GET", "/v1/failures"), ("GET", "/v1/activity")})
# Each route: the scope it needs, and its body naming the resources `ids`.
EVERY_ROUTE: dict[tuple[str, str], tuple[str, Body]] = {
    ("POST", "/run-task/"): (WRITE, lambda ids: {"kind": "demo.echo", "queue": ids.queue}),
    ("GET", "/tasks/{task_id}"): (READ, None),
    ("POST", "/v1/tasks"): (WRITE, _task),
    ("GET", "/v1/tasks"): (READ, None),
    ("POST", "/v1/tasks:batchCreate"): (WRITE, lambda ids: {"requests": [_task(ids)]}),
    ("POST", "/v1/tasks:batchCancel"): (WRITE, lambda ids: {"task_ids": [ids.task]}),
    ("POST", "/v1/tasks:batchRetry"): (WRITE, lambda ids: {"task_ids": [ids.task]}),
    ("POST", "/v1/tasks/{task_id}:retry"): (WRITE, None),
    ("POST", "/v1/tasks/{task_id}:cancel"): (WRITE, None),
    ("GET", "/v1/tasks/{task_id}"): (READ, None),
    ("GET", "/v1/tasks/{task_id}/events"): (READ, None),
    ("GET", "/v1/tasks/{task_id}:explain"): (READ, None),
    ("GET", "/v1/queues"): (READ, None),
    ("POST", "/v1/queues/{name}:pause"): (WRITE, None),
    ("POST", "/v1/queues/{name}:resume"): (WRITE, None),
    ("POST", "/v1/queues/{name}:purge"): (WRITE, None),
    ("GET", "/v1/queues/{name}"): (READ, None),
    ("PATCH", "/v1/queues/{name}"): (WRITE, lambda ids: {"max_concurrent": 3}),
    ("DELETE", "/v1/queues/{name}"): (WRITE, None),
    (
        "POST",
        "/v1/schedules",
    ): (WRITE, lambda ids: {"cron": "@daily", "task": {"kind": "demo.echo", "queue": ids.queue}}),
    ("GET", "/v1/schedules"): (READ, None),
    ("POST", "/v1/schedules/{schedule_id}:pause"): (WRITE, None),
    ("POST", "/v1/schedules/{schedule_id}:resume"): (WRITE, None),
    ("POST", "/v1/schedules/{schedule_id}:trigger"): (WRITE, None),
    ("GET", "/v1/schedules/{schedule_id}"): (READ, None),
    ("PATCH", "/v1/schedules/{schedule_id}"): (WRITE, lambda ids: {"description": "taken over"}),
    ("DELETE", "/v1/schedules/{schedule_id}"): (WRITE, None),
    ("POST", "/v1/workflows"): (WRITE, _workflow),
    ("GET", "/v1/workflows"): (READ, None),
    ("GET", "/v1/workflows/{workflow_id}"): (READ, None),
    ("POST", "/v1/workflows/{workflow_id}:cancel"): (WRITE, None),
    ("GET", "/v1/workflows/{workflow_id}/events"): (READ, None),
    ("GET", "/v1/workers"): (READ, None),
    ("GET", "/v1/failures"): (READ, None),
    ("GET", "/v1/activity"): (READ, None),
    # Last: it makes the intruder a queue of the owner's queue's name (its own, in its tenant).
    ("POST", "/v1/queues"): (WRITE, lambda ids: {"name": ids.queue}),
}
OPEN_ROUTES = {("GET", "/healthz")}


def base_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.config.gateway_port}"


def test_the_table_names_every_route(stack: Stack) -> None:
    paths = httpx.get(f"{base_url(stack)}/openapi.json").json()["paths"]
    routes = {(method.upper(), path) for path, methods in paths.items() for method in methods}
    assert set(EVERY_ROUTE) == routes - OPEN_ROUTES


def answer(client: httpx.Client, route: tuple[str, str], ids: Ids) -> tuple[Any, ...]:
    """(status, detail, reason, field) of a request, its ids replaced by placeholders."""
    method, template = route
    make = EVERY_ROUTE[route][1]
    response = client.request(
        method, ids.path(template), json=make(ids) if make is not None else None
    )
    if response.status_code < 400:
        return (response.status_code,)
    body = response.json()
    return (
        response.status_code,
        ids.hidden(body.get("detail", "")),
        body.get("reason"),
        body.get("field"),
    )


@dataclass
class Owner:
    tenant: str
    client: httpx.Client
    ids: Ids


@pytest.fixture
def owner(stack: Stack) -> Any:
    tenant = f"owner-{uuid.uuid4().hex[:8]}"
    headers = {"authorization": f"Bearer {stack.token(tenant=tenant)}"}
    with httpx.Client(base_url=base_url(stack), headers=headers, timeout=30) as client:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        assert client.post("/v1/queues", json={"name": queue, "max_concurrent": 7}).is_success
        task = client.post("/v1/tasks", json={"kind": "demo.echo", "queue": queue, "run_at": LATER})
        schedule = client.post(
            "/v1/schedules", json={"cron": "@daily", "task": {"kind": "demo.echo", "queue": queue}}
        )
        workflow = client.post("/v1/workflows", json=_workflow_in(queue))
        ids = Ids(
            task.json()["task_id"],
            queue,
            schedule.json()["schedule_id"],
            workflow.json()["workflow_id"],
        )
        yield Owner(tenant, client, ids)


def client_for(stack: Stack, tenant: str, scopes: list[str] | None = None) -> httpx.Client:
    token = stack.token(tenant=tenant, scopes=[READ, WRITE] if scopes is None else scopes)
    return httpx.Client(
        base_url=base_url(stack), headers={"authorization": f"Bearer {token}"}, timeout=30
    )


def assert_untouched(owner: Owner) -> None:
    ids, client = owner.ids, owner.client
    assert client.get(f"/v1/tasks/{ids.task}").json()["status"] == "SCHEDULED"
    queue = client.get(f"/v1/queues/{ids.queue}").json()
    assert (queue["max_concurrent"], queue["state"]) == (7, "RUNNING")
    schedule = client.get(f"/v1/schedules/{ids.schedule}").json()
    assert (schedule["description"], schedule["paused"]) == ("", False)
    workflow = client.get(f"/v1/workflows/{ids.workflow}").json()
    assert workflow["status"] == "RUNNING"
    assert [step["status"] for step in workflow["steps"]] == ["SCHEDULED", "BLOCKED"]


def listed_ids(client: httpx.Client, path: str) -> set[str]:
    body = client.get(path, params={"page_size": 1000}).json()
    items = (
        body.get("tasks")
        or body.get("queues")
        or body.get("schedules")
        or body.get("workflows")
        or []
    )
    return {
        item.get("task_id") or item.get("schedule_id") or item.get("workflow_id") or item["name"]
        for item in items
    }


def test_another_tenants_resources_answer_as_unknown_ones_on_every_route(
    stack: Stack, owner: Owner
) -> None:
    with client_for(stack, f"intruder-{uuid.uuid4().hex[:8]}") as intruder:
        for _, path in sorted(LIST_ROUTES):
            own, seen = listed_ids(owner.client, path), listed_ids(intruder, path)
            mine = {owner.ids.task, owner.ids.queue, owner.ids.schedule, owner.ids.workflow}
            assert own & mine and not seen & mine, path
        for route in EVERY_ROUTE:
            if route in LIST_ROUTES | SHARED_ROUTES:
                continue
            unknown = Ids.unknown()
            theirs, nobodys = answer(intruder, route, owner.ids), answer(intruder, route, unknown)
            assert theirs == nobodys, route
            acting_on_their_own = route in BULK_ROUTES | OVERVIEW_ROUTES
            assert theirs[0] in (404, 400, 201) or acting_on_their_own, (route, theirs)
    assert_untouched(owner)


@pytest.mark.parametrize(
    "scopes",
    [[READ], [WRITE], []],
    ids=["read-only: every write refused", "write-only: every read refused", "no scope"],
)
def test_every_route_checks_its_scope(stack: Stack, owner: Owner, scopes: list[str]) -> None:
    with client_for(stack, owner.tenant, scopes) as client:
        for route, (scope, _) in EVERY_ROUTE.items():
            if scope in scopes:
                continue
            refused = answer(client, route, owner.ids)
            expected = f"this operation needs the {scope} scope"
            assert refused[:3] == (403, expected, "MISSING_SCOPE"), route
    assert_untouched(owner)


def test_no_token_and_no_secret_reaches_the_logs_or_an_answer(stack: Stack) -> None:
    base = base_url(stack)
    expired = mint_token(stack.jwt_secret, "dev", ttl_seconds=-3600)
    forged = mint_token("another-secret-" + "y" * 40, "dev")
    valid = stack.token(tenant=f"logged-{uuid.uuid4().hex[:8]}")
    tokens = [expired, forged, valid, "garbage-" + uuid.uuid4().hex]
    answers: list[str] = []
    for token in tokens:
        headers = {"authorization": f"Bearer {token}"}
        for response in (
            httpx.get(f"{base}/v1/tasks/{uuid.uuid4()}", headers=headers),
            httpx.post(f"{base}/v1/tasks", headers=headers, json={"kind": "demo.echo", "x": 1}),
            httpx.get(f"{base}/dashboard", cookies={"taskscheduler_token": token}),
            httpx.post(f"{base}/dashboard/sign-in", data={"token": token}),
        ):
            answers.append(response.text)
    with grpc.insecure_channel(f"127.0.0.1:{stack.config.grpc_port}") as channel:
        stub = TaskServiceStub(channel)
        for token in tokens:
            with pytest.raises(grpc.RpcError) as excinfo:
                stub.GetTask(
                    pb.GetTaskRequest(task_id=str(uuid.uuid4())),
                    metadata=(("authorization", f"Bearer {token}"),),
                )
            answers.append(str(excinfo.value))
    stream = stack.config.log_stream
    logs = stream.getvalue() if isinstance(stream, io.StringIO) else ""
    assert "       api |" in logs and "   gateway |" in logs  # both processes' lines are here
    for text in (logs, *answers):
        assert stack.jwt_secret not in text
        for token in tokens:
            assert token not in text
            assert token.split(".")[-1] not in text  # not even a JWT's signature
