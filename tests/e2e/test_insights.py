"""The dead letters by error type, the payload search and each queue's hour over REST, taskctl
and the SDK, on the stack `make run` starts; each in a tenant of its own, so that the counts
are exact."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from taskscheduler.client import Client, TaskStatus
from taskscheduler.devstack.stack import Stack
from tests.e2e.test_cli import taskctl
from tests.helpers import rest_wait_for_status

pytestmark = pytest.mark.e2e

DEMO_FAILURE = "taskscheduler.handlers.demo.DemoFailure"
NON_RETRYABLE = "taskscheduler.core.kinds.NonRetryableError"


@pytest.fixture
def tenant() -> str:
    return f"insights-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def rest(stack: Stack, tenant: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.config.gateway_port}",
        headers={"authorization": f"Bearer {stack.token(tenant=tenant)}"},
        timeout=30,
    ) as client:
        yield client


def run_failures(rest: httpx.Client) -> list[str]:
    """Two DemoFailures and one NonRetryableError, each of one attempt, run to the end."""
    once = {"kind": "demo.fail", "retry_policy": {"max_attempts": 1}}
    requests = [
        {**once, "payload": {"message": "card declined"}},
        {**once, "payload": {"message": "card declined"}},
        {**once, "payload": {"message": "no such user", "retryable": False}},
    ]
    created = rest.post("/v1/tasks:batchCreate", json={"requests": requests}).json()["tasks"]
    ids = [task["task_id"] for task in created]
    for task_id in ids:
        rest_wait_for_status(rest, task_id, "FAILED")
    return ids


def test_rest_groups_failures_and_filters_tasks_by_error_type_and_payload(
    rest: httpx.Client,
) -> None:
    ids = run_failures(rest)
    groups = rest.get("/v1/failures").json()["groups"]
    assert [(g["error_type"], g["count"]) for g in groups] == [
        (DEMO_FAILURE, 2),
        (NON_RETRYABLE, 1),
    ]
    assert groups[1]["latest_task_id"] == ids[2]
    assert groups[1]["latest_message"] == "no such user (attempt 1)"
    by_type = rest.get("/v1/tasks", params={"error_type": NON_RETRYABLE}).json()["tasks"]
    assert [task["task_id"] for task in by_type] == [ids[2]]
    found = rest.get("/v1/tasks", params={"payload_contains": '{"message": "card declined"}'})
    assert sorted(task["task_id"] for task in found.json()["tasks"]) == sorted(ids[:2])
    selector = {"filter": {"statuses": ["FAILED"], "error_type": DEMO_FAILURE}}
    counted = rest.post("/v1/tasks:batchRetry", json={**selector, "dry_run": True}).json()
    assert counted["matched"] == 2
    (queue,) = rest.get("/v1/activity", params={"queue": "default"}).json()["queues"]
    assert len(queue["minutes"]) == 60
    assert sum(minute["failed"] for minute in queue["minutes"]) == 3


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"payload_contains": "{not json"}, "payload_contains: is not JSON"),
        ({"payload_contains": "[1, 2]"}, "payload_contains: must be a JSON object"),
        ({"error_type": "e" * 501}, "error_type"),
    ],
)
def test_rest_names_a_bad_filter(rest: httpx.Client, params: dict[str, str], detail: str) -> None:
    response = rest.get("/v1/tasks", params=params)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)


def test_taskctl_shows_failures_and_activity_and_retries_a_group(
    stack: Stack, rest: httpx.Client, tenant: str
) -> None:
    run_failures(rest)
    token = stack.token(tenant=tenant)
    shown = taskctl(stack, "failures", "--json", token=token)
    assert shown.returncode == 0, shown.stderr
    assert [g["count"] for g in json.loads(shown.stdout)] == ["2", "1"]  # int64: JSON strings
    table = taskctl(stack, "failures", token=token)
    assert DEMO_FAILURE in table.stdout and "card declined (attempt 1)" in table.stdout
    listed = taskctl(stack, "list", "--payload", '{"retryable": false}', "--json", token=token)
    assert [task["kind"] for task in json.loads(listed.stdout)] == ["demo.fail"]
    args = ("retry", "--status", "FAILED", "--error-type", DEMO_FAILURE, "--yes")
    retried = taskctl(stack, *args, token=token)
    assert retried.returncode == 0 and "2 retried" in retried.stdout, retried.stdout
    activity = taskctl(stack, "activity", token=token)
    assert activity.returncode == 0 and "default" in activity.stdout
    bad = taskctl(stack, "list", "--payload", "[1]", token=token)
    assert bad.returncode == 2 and "must be a JSON object" in bad.stderr


def test_the_sdk_reads_failures_activity_and_payload_matches(
    stack: Stack, rest: httpx.Client, tenant: str
) -> None:
    ids = run_failures(rest)
    address = f"127.0.0.1:{stack.config.grpc_port}"
    with Client(address, token=stack.token(tenant=tenant)) as client:
        groups = client.failure_groups()
        assert [(g.error_type, g.count) for g in groups] == [(DEMO_FAILURE, 2), (NON_RETRYABLE, 1)]
        assert client.failure_groups(kind="demo.echo") == []
        matched = client.list(payload_contains={"message": "no such user"})
        assert [task.id for task in matched] == [ids[2]]
        failed = client.list(statuses=[TaskStatus.TASK_STATUS_FAILED], error_type=DEMO_FAILURE)
        assert sorted(task.id for task in failed) == sorted(ids[:2])
        counted = client.retry_many(
            dry_run=True, statuses=[TaskStatus.TASK_STATUS_FAILED], payload_contains={"n": 1}
        )
        assert counted.matched_count == 0
        (queue,) = client.activity()
        assert queue.queue == "default" and sum(m.failed for m in queue.minutes) == 3
