"""Bulk cancel and retry over REST and taskctl, on the stack `make run` starts."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from taskscheduler.devstack.stack import Stack
from tests.e2e.test_cli import taskctl

pytestmark = pytest.mark.e2e

LATER = "2099-01-01T00:00:00+00:00"


def later_tasks(client: httpx.Client, queue: str, count: int) -> list[str]:
    assert client.post("/v1/queues", json={"name": queue}).status_code == 201
    body = {"requests": [{"kind": "demo.echo", "queue": queue, "run_at": LATER}] * count}
    response = client.post("/v1/tasks:batchCreate", json=body)
    assert response.status_code == 201, response.text
    return [task["task_id"] for task in response.json()["tasks"]]


def test_rest_cancels_and_retries_by_filter(client: httpx.Client) -> None:
    queue = f"bulk-{uuid.uuid4().hex[:6]}"
    ids = later_tasks(client, queue, 5)
    chosen = {"filter": {"queue": queue, "statuses": ["SCHEDULED"]}}
    counted = client.post("/v1/tasks:batchCancel", json={**chosen, "dry_run": True}).json()
    assert (counted["matched"], counted["cancelled"]) == (5, 0)
    cancelled = client.post("/v1/tasks:batchCancel", json=chosen).json()
    assert (cancelled["matched"], cancelled["cancelled"], cancelled["not_acted"]) == (5, 5, [])
    again = {"filter": {"queue": queue, "statuses": ["CANCELLED"]}}
    retried = client.post("/v1/tasks:batchRetry", json=again).json()
    assert retried["retried"] == 5 and {c["task_id"] for c in retried["copies"]} == set(ids)
    by_ids = client.post("/v1/tasks:batchCancel", json={"task_ids": ids[:2]}).json()
    assert [item["reason"] for item in by_ids["not_acted"]] == ["TASK_ALREADY_FINISHED"] * 2


def test_rest_names_bad_input(client: httpx.Client) -> None:
    both = {"task_ids": [str(uuid.uuid4())], "filter": {}}
    response = client.post("/v1/tasks:batchCancel", json=both)
    assert response.status_code == 400 and "task_ids" in response.text
    empty = client.post("/v1/tasks:batchRetry", json={})
    assert empty.status_code == 400 and "task_ids" in empty.text
    window = {"filter": {"create_time_after": LATER, "create_time_before": LATER}}
    response = client.post("/v1/tasks:batchCancel", json=window)
    assert response.status_code == 400 and "create_time_before" in response.text


def test_taskctl_cancels_by_filter_after_asking(stack: Stack) -> None:
    token = stack.token(tenant="cli-bulk")
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.config.gateway_port}",
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    ) as client:
        queue = f"emails-{uuid.uuid4().hex[:6]}"
        later_tasks(client, queue, 3)
    args = ("cancel", "--status", "SCHEDULED", "--queue", queue)
    declined = taskctl(stack, *args, token=token, stdin="n\n")
    assert declined.returncode == 1 and "cancel 3 tasks?" in declined.stdout
    done = taskctl(stack, *args, "--yes", "--json", token=token)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cancelled_count"] == 3
    nothing = taskctl(stack, *args, "--yes", token=token)
    assert nothing.returncode == 0 and "0 matched" in nothing.stdout
    retried = taskctl(stack, "retry", "--status", "CANCELLED", "--since", "1h", "--yes",
                      token=token)  # fmt: skip
    assert retried.returncode == 0 and "3 retried" in retried.stdout
    unbounded = taskctl(stack, "cancel", "--yes", token=token)
    assert unbounded.returncode == 2 and "give task ids" in unbounded.stderr
