"""taskctl against the real stack, as a script would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskscheduler.devstack.stack import Stack

pytestmark = pytest.mark.e2e


def taskctl(
    stack: Stack, *args: str, token: str | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Runs taskctl with `stdin` as its input (never the terminal: a prompt must not wait)."""
    env = dict(
        os.environ,
        TASKSCHED_ADDRESS=f"127.0.0.1:{stack.config.grpc_port}",
        TASKSCHED_TOKEN=token if token is not None else stack.token(tenant="cli"),
        TASKSCHED_JWT_SECRET=stack.jwt_secret,
        COLUMNS="200",
    )
    return subprocess.run(
        [sys.executable, "-m", "taskscheduler.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_schedule_and_watch_until_success(stack: Stack) -> None:
    run = taskctl(stack, "schedule", "demo.sleep", '{"seconds": 0.2}', "--watch")
    assert run.returncode == 0, run.stderr
    assert "SUCCESS" in run.stdout
    listed = taskctl(stack, "list", "--json", "--kind", "demo.sleep")
    tasks = json.loads(listed.stdout)
    assert (
        tasks and tasks[0]["kind"] == "demo.sleep" and tasks[0]["status"] == "TASK_STATUS_SUCCESS"
    )


def test_a_failed_task_exits_with_status_1_and_retry_makes_a_copy(stack: Stack) -> None:
    run = taskctl(
        stack, "schedule", "demo.fail", '{"fail_times": 1}', "--max-attempts", "1", "--watch",
        "--json",
    )  # fmt: skip
    assert run.returncode == 1
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    failed = lines[-1]
    assert failed["status"] == "TASK_STATUS_FAILED"
    again = taskctl(stack, "retry", failed["id"], "--watch", "--json")
    copy = [json.loads(line) for line in again.stdout.splitlines()][-1]
    assert copy["id"] != failed["id"] and copy["payload"] == {"fail_times": 1}
    assert copy["status"] == "TASK_STATUS_FAILED"  # the same payload fails its one attempt again


def test_errors_are_clear_and_exit_non_zero(stack: Stack) -> None:
    unknown = taskctl(stack, "get", "00000000-0000-4000-8000-000000000000")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    bad = taskctl(stack, "schedule", "demo.echo", "not json")
    assert bad.returncode == 2 and "not JSON" in bad.stderr
    kind = taskctl(stack, "schedule", "no.such.kind")
    assert kind.returncode == 1 and "INVALID_ARGUMENT" in kind.stderr and "kind" in kind.stderr
    unsigned = taskctl(stack, "list", token="not-a-token")
    assert unsigned.returncode == 1 and "UNAUTHENTICATED" in unsigned.stderr


def test_a_minted_token_is_accepted(stack: Stack) -> None:
    minted = taskctl(stack, "token", "--tenant", "cli-token", "--scope", "tasks:read")
    assert minted.returncode == 0
    listed = taskctl(stack, "list", "--json", token=minted.stdout.strip())
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    denied = taskctl(stack, "schedule", "demo.echo", token=minted.stdout.strip())
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr


def test_workflows_create_from_a_file_watch_list_get_and_cancel(
    stack: Stack, tmp_path: Path
) -> None:
    body = {
        "name": "cli diamond",
        "on_failure": "CONTINUE",
        "steps": [
            {"name": "fetch", "task": {"kind": "demo.echo", "payload": {"n": 1}, "timeout": 30}},
            {"name": "left", "task": {"kind": "demo.echo"}, "depends_on": ["fetch"]},
            {"name": "right", "task": {"kind": "demo.echo"}, "depends_on": ["fetch"]},
            {"name": "join", "task": {"kind": "demo.gather"}, "depends_on": ["left", "right"]},
        ],
    }
    path = tmp_path / "diamond.json"
    path.write_text(json.dumps(body))
    run = taskctl(stack, "workflows", "create", str(path), "--watch")
    assert run.returncode == 0, run.stderr
    assert "SUCCESS" in run.stdout and "join" in run.stdout
    listed = json.loads(taskctl(stack, "workflows", "list", "--status", "success", "--json").stdout)
    workflow = next(w for w in listed if w["name"] == "cli diamond")
    assert workflow["on_failure"] == "FAILURE_POLICY_CONTINUE"
    shown = json.loads(taskctl(stack, "workflows", "get", workflow["id"], "--json").stdout)
    assert [step["name"] for step in shown["steps"]] == ["fetch", "left", "right", "join"]
    waiting = {
        "steps": [{"name": "nap", "task": {"kind": "demo.sleep", "payload": {"seconds": 30}}}]
    }
    created = taskctl(stack, "workflows", "create", "-", "--json", stdin=json.dumps(waiting))
    nap = json.loads(created.stdout)
    cancelled = taskctl(stack, "workflows", "cancel", nap["id"], "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    ended = taskctl(stack, "workflows", "watch", nap["id"])
    assert ended.returncode == 1 and "CANCELLED" in ended.stdout
    bad = taskctl(
        stack, "workflows", "create", "-", stdin='{"steps": [{"name": "a", "depends_on": ["a"]}]}'
    )
    assert bad.returncode == 1 and "steps[0].depends_on" in bad.stderr
