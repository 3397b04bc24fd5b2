"""The fleet over REST and taskctl, on the stack `make run` starts."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from taskscheduler.devstack.stack import Stack
from tests.e2e.test_cli import taskctl
from tests.helpers import rest_wait_for_status

pytestmark = pytest.mark.e2e


def online_workers(client: httpx.Client) -> list[dict[str, object]]:
    """The ONLINE processes, once the stack's worker and its pool have all registered."""
    deadline = time.monotonic() + 30
    while True:
        response = client.get("/v1/workers", params={"state": "ONLINE"})
        assert response.status_code == 200, response.text
        workers: list[dict[str, object]] = response.json()["workers"]
        mains = [w for w in workers if not w["parent"]]
        pools = [w for w in workers if w["parent"]]
        if mains and len(pools) >= sum(int(str(m["concurrency"])) for m in mains):
            return workers
        assert time.monotonic() < deadline, workers
        time.sleep(0.2)


def test_the_workers_route_lists_the_fleet_and_what_it_runs(client: httpx.Client) -> None:
    workers = online_workers(client)
    assert all(w["state"] == "ONLINE" and w["heartbeat_time"] for w in workers)
    task = client.post("/v1/tasks", json={"kind": "demo.sleep", "payload": {"seconds": 3}}).json()
    current = rest_wait_for_status(client, task["task_id"], "RUNNING", within=20)
    runner = current["attempts"][-1]["worker"]
    listed = {w["name"]: w for w in client.get("/v1/workers").json()["workers"]}
    assert task["task_id"] in listed[runner]["running_task_ids"]
    assert task["task_id"] in listed[listed[runner]["parent"]]["running_task_ids"]


def test_the_workers_route_names_a_bad_state(client: httpx.Client) -> None:
    response = client.get("/v1/workers", params={"state": "ASLEEP"})
    assert response.status_code == 400
    assert "state" in response.text


def test_taskctl_lists_the_workers(stack: Stack, client: httpx.Client) -> None:
    names = {w["name"] for w in online_workers(client)}
    listed = taskctl(stack, "workers", "--state", "online", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {w["name"] for w in json.loads(listed.stdout)} >= names
    table = taskctl(stack, "workers")
    assert table.returncode == 0 and "ONLINE" in table.stdout
    bad = taskctl(stack, "workers", "--state", "asleep")
    assert bad.returncode == 2 and "--state" in bad.stderr
