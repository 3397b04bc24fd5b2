"""Progress from handlers on the stack `make run` starts: Server-Sent Events of kind
`progress` between the status events, the task's JSON, and taskctl watch."""

from __future__ import annotations

import json

import httpx
import pytest

from taskscheduler.devstack.stack import Stack
from tests.e2e.test_cli import taskctl

pytestmark = pytest.mark.e2e


def test_an_sse_client_gets_progress_events_in_order(client: httpx.Client) -> None:
    task = client.post("/v1/tasks", json={"kind": "demo.sleep", "payload": {"seconds": 1.2}})
    task_id = task.json()["task_id"]
    events: list[tuple[str, dict[str, object]]] = []
    with client.stream("GET", f"/v1/tasks/{task_id}/events") as response:
        name = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.removeprefix("data:"))))
    names = [name for name, _ in events]
    statuses = [body["status"] for name, body in events if name == "status"]
    assert statuses[-2:] == ["RUNNING", "SUCCESS"]
    first = names.index("progress")
    assert events[first - 1][1]["status"] == "RUNNING"
    assert names[first:-1] == ["progress"] * (len(names) - 1 - first)
    done = [body["progress"]["done"] for name, body in events if name == "progress"]  # type: ignore[index]
    assert len(done) >= 3 and done == sorted(done) and done[-1] == 1.2
    final = client.get(f"/v1/tasks/{task_id}").json()
    assert final["progress"]["done"] == final["progress"]["total"] == 1.2
    assert final["progress"]["message"] == "done" and final["progress"]["update_time"]


def test_taskctl_watch_shows_the_progress(stack: Stack) -> None:
    run = taskctl(stack, "schedule", "demo.sleep", '{"seconds": 1}', "--watch", "--json")
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    reports = [line["progress"] for line in lines if "progress" in line]
    assert len(reports) >= 2 and reports[-1]["done"] == 1 and reports[-1]["message"] == "done"
    assert [line["status"] for line in lines if "status" in line][-1] == "TASK_STATUS_SUCCESS"
    shown = taskctl(stack, "schedule", "demo.sleep", '{"seconds": 0.6}', "--watch")
    assert shown.returncode == 0, shown.stderr
    assert "100%" in shown.stdout and "SUCCESS" in shown.stdout
