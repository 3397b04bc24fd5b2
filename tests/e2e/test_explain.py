"""ExplainTask over REST and taskctl, on the stack `make run` starts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from taskscheduler.devstack.stack import Stack
from tests.e2e.test_cli import taskctl

pytestmark = pytest.mark.e2e


def test_explain_over_rest_and_taskctl(stack: Stack, client: httpx.Client) -> None:
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    task = client.post("/v1/tasks", json={"kind": "demo.echo", "run_at": later}).json()
    explained = client.get(f"/v1/tasks/{task['task_id']}:explain")
    assert explained.status_code == 200, explained.text
    body = explained.json()
    assert body["status"] == "SCHEDULED" and body["worker"] == ""
    assert [r["code"] for r in body["reasons"]] == ["NOT_DUE"]
    assert datetime.fromisoformat(body["reasons"][0]["until"]) == datetime.fromisoformat(
        task["run_at"]
    )
    unknown = client.get("/v1/tasks/00000000-0000-4000-8000-000000000000:explain")
    assert unknown.status_code == 404
    token = stack.token()  # the tenant of `client`
    shown = taskctl(stack, "explain", task["task_id"], token=token)
    assert shown.returncode == 0, shown.stderr
    assert "NOT_DUE" in shown.stdout and "SCHEDULED" in shown.stdout
    as_json = json.loads(taskctl(stack, "explain", task["task_id"], "--json", token=token).stdout)
    assert as_json["reasons"][0]["code"] == "WAIT_REASON_CODE_NOT_DUE"
