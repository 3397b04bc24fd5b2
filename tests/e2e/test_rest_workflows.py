"""Workflows and task dependencies over REST, through the gateway of the stack `make run`
starts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def step(name: str, depends_on: list[str] | None = None, **task: Any) -> dict[str, Any]:
    template = {"kind": "demo.echo", "payload": {"step": name}} | task
    return {"name": name, "task": template, "depends_on": depends_on or []}


def created(response: httpx.Response) -> Any:
    assert response.status_code == 201, response.text
    return response.json()


def sse(client: httpx.Client, path: str) -> list[tuple[str, Any]]:
    """Every (event, data) of an SSE answer, until it closes."""
    events: list[tuple[str, Any]] = []
    name = ""
    with client.stream("GET", path) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.removeprefix("data:"))))
    return events


def test_a_chain_runs_to_success_with_its_events_and_steps_listed(client: httpx.Client) -> None:
    # The first step waits a second and a half: the stream is open before anything moves.
    extract = step("extract") | {"run_at": (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()}
    body = {
        "name": "nightly report",
        "steps": [extract, step("transform", ["extract"]), step("load", ["transform"])],
    }
    workflow = created(client.post("/v1/workflows", json=body))
    assert workflow["name"] == "nightly report" and workflow["on_failure"] == "CANCEL_WORKFLOW"
    assert [s["status"] for s in workflow["steps"]][1:] == ["BLOCKED", "BLOCKED"]
    events = sse(client, f"/v1/workflows/{workflow['workflow_id']}/events")
    assert events[0][0] == "workflow"
    name, last = events[-1]
    assert name == "step" and last["status"] == "SUCCESS"
    assert last["workflow"]["status"] == "SUCCESS"
    load = [
        data["step"] for kind, data in events if kind == "step" and data["step"]["name"] == "load"
    ]
    assert [s["status"] for s in load][-1] == "SUCCESS"
    again = client.get(f"/v1/workflows/{workflow['workflow_id']}").json()
    assert again["status"] == "SUCCESS" and again["finish_time"]
    steps = client.get("/v1/tasks", params={"workflow_id": workflow["workflow_id"]}).json()
    assert {t["step_name"] for t in steps["tasks"]} == {"extract", "transform", "load"}
    listed = client.get("/v1/workflows", params={"status": "SUCCESS", "page_size": 1000}).json()
    assert workflow["workflow_id"] in {w["workflow_id"] for w in listed["workflows"]}


def test_cancel_and_idempotency_over_rest(client: httpx.Client) -> None:
    body = {"steps": [step("nap", kind="demo.sleep", payload={"seconds": 30}), step("b", ["nap"])]}
    headers = {"Idempotency-Key": "rest-workflow-1"}
    workflow = created(client.post("/v1/workflows", json=body, headers=headers))
    again = created(client.post("/v1/workflows", json=body, headers=headers))
    assert again["workflow_id"] == workflow["workflow_id"]
    path = f"/v1/workflows/{workflow['workflow_id']}"
    cancelled = client.post(f"{path}:cancel")
    assert cancelled.status_code == 200
    assert {s["name"]: s["status"] for s in cancelled.json()["steps"]}["b"] == "CANCELLED"
    events = sse(client, f"{path}/events")
    assert events[-1][1]["workflow"]["status"] == "CANCELLED"
    assert client.post(f"{path}:cancel").status_code == 409


def test_invalid_workflows_are_400_naming_the_field(client: httpx.Client) -> None:
    cycle = {"steps": [step("a", ["b"]), step("b", ["a"])]}
    response = client.post("/v1/workflows", json=cycle)
    assert response.status_code == 400
    assert response.json()["field"] == "steps[0].depends_on"
    unknown_kind = {"steps": [step("a"), step("b", kind="no.such.kind")]}
    response = client.post("/v1/workflows", json=unknown_kind)
    assert (response.status_code, response.json()["field"]) == (400, "steps[1].task.kind")
    assert client.get("/v1/workflows/00000000-0000-4000-8000-000000000000").status_code == 404


def test_a_task_depends_on_another_over_rest(client: httpx.Client) -> None:
    first = created(
        client.post("/v1/tasks", json={"kind": "demo.sleep", "payload": {"seconds": 1}})
    )
    second = created(
        client.post("/v1/tasks", json={"kind": "demo.echo", "depends_on": [first["task_id"]]})
    )
    assert second["status"] == "BLOCKED"
    statuses = [data["status"] for _, data in sse(client, f"/v1/tasks/{second['task_id']}/events")]
    assert statuses[0] == "BLOCKED" and statuses[-1] == "SUCCESS"
    assert client.get(f"/v1/tasks/{second['task_id']}").json()["depends_on"] == [first["task_id"]]
    bad = client.post("/v1/tasks", json={"kind": "demo.echo", "depends_on": ["nope"]})
    assert (bad.status_code, bad.json()["field"]) == (400, "depends_on[0]")
