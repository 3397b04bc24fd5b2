"""`taskctl queues ...` and `taskctl schedules ...` against the real stack, as a script would
run them (the schedule commands skip while the api answers UNIMPLEMENTED)."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from taskscheduler.devstack.stack import Stack
from tests.e2e.test_cli import taskctl

pytestmark = pytest.mark.e2e
ONE_BROKER = True  # taskctl's queue and schedule commands, stored in PostgreSQL


def run(stack: Stack, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return taskctl(stack, *args, token=stack.token(tenant="cli-flow"), stdin=stdin)


def ok(stack: Stack, *args: str) -> Any:
    """The JSON a successful command printed (its last line, when it prints several)."""
    done = run(stack, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_queue_commands(stack: Stack) -> None:
    created = ok(stack, "queues", "create", "cli-q", "--max-concurrent", "3", "--rate-limit", "20")
    assert created["name"] == "cli-q" and created["state"] == "QUEUE_STATE_RUNNING"
    assert created["max_concurrent"] == 3 and created["rate_limit"]["per_second"] == 20
    paused = run(stack, "queues", "pause", "cli-q")
    assert paused.returncode == 0 and "PAUSED" in paused.stdout

    task = ok(
        stack, "schedule", "demo.echo", '{"x": 1}', "--queue", "cli-q", "--priority", "8",
        "--concurrency-key", "k1",
    )  # fmt: skip
    assert (task["queue"], task["priority"], task["concurrency_key"]) == ("cli-q", 8, "k1")
    time.sleep(1)
    listed = ok(stack, "list", "--queue", "cli-q")
    assert [(t["id"], t["status"]) for t in listed] == [(task["id"], "TASK_STATUS_PENDING")]
    assert ok(stack, "list", "--queue", "default") == []
    assert ok(stack, "queues", "get", "cli-q")["waiting_count"] == "1"  # int64: a JSON string
    table = run(stack, "queues", "list")
    assert table.returncode == 0 and "cli-q" in table.stdout and "PAUSED" in table.stdout
    shown = run(stack, "get", task["id"])
    assert "queue cli-q, priority 8, concurrency key k1" in shown.stdout

    assert ok(stack, "queues", "resume", "cli-q")["state"] == "QUEUE_STATE_RUNNING"
    watched = run(stack, "watch", task["id"])
    assert watched.returncode == 0 and "SUCCESS" in watched.stdout

    updated = ok(stack, "queues", "update", "cli-q", "--max-concurrent-per-key", "1")
    assert (updated["max_concurrent"], updated["max_concurrent_per_key"]) == (3, 1)
    assert updated["rate_limit"]["per_second"] == 20
    updated = ok(stack, "queues", "update", "cli-q", "--rate-limit", "0", "--max-attempts", "2")
    assert "rate_limit" not in updated and updated["retry_policy"] == {"max_attempts": 2}
    nothing = run(stack, "queues", "update", "cli-q")
    assert nothing.returncode == 2 and "at least one" in nothing.stderr
    burst = run(stack, "queues", "update", "cli-q", "--burst", "3")
    assert burst.returncode == 2 and "--rate-limit" in burst.stderr

    for _ in range(2):
        ok(stack, "schedule", "demo.echo", "--queue", "cli-q", "--run-at", "2100-01-01T00:00:00Z")
    kept = run(stack, "queues", "purge", "cli-q", stdin="n\n")
    assert kept.returncode == 1 and "Aborted" in kept.stderr
    assert ok(stack, "queues", "get", "cli-q")["waiting_count"] == "2"
    purged = ok(stack, "queues", "purge", "cli-q", "--yes")
    assert purged["cancelled_count"] == 2 and purged["queue"]["name"] == "cli-q"
    assert "waiting_count" not in purged["queue"]  # 0: omitted from the JSON

    assert ok(stack, "queues", "delete", "cli-q") == {"name": "cli-q", "deleted": True}
    gone = run(stack, "queues", "get", "cli-q")
    assert gone.returncode == 1 and "NOT_FOUND" in gone.stderr
    default = run(stack, "queues", "delete", "default")
    assert default.returncode == 1 and "FAILED_PRECONDITION" in default.stderr
    bad = run(stack, "queues", "create", "Bad Name")
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "queue.name" in bad.stderr


def test_schedule_commands(stack: Stack) -> None:
    first = run(
        stack, "schedules", "create", "0 3 * * *", "demo.echo", '{"n": 1}', "--time-zone",
        "Europe/Paris", "--priority", "3", "--overlap", "allow", "--description", "nightly",
        "--json",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)
    schedule_id = created["id"]
    assert (created["cron"], created["time_zone"]) == ("0 3 * * *", "Europe/Paris")
    assert created["task"]["kind"] == "demo.echo" and created["task"]["payload"] == {"n": 1}
    assert created["task"]["priority"] == 3 and created["overlap"] == "OVERLAP_POLICY_ALLOW"
    assert created["next_fire_times"]

    shown = run(stack, "schedules", "get", schedule_id)
    assert shown.returncode == 0, shown.stderr
    assert "0 3 * * *" in shown.stdout and "Europe/Paris" in shown.stdout
    assert "nightly" in shown.stdout and "next fires" in shown.stdout
    assert schedule_id in {s["id"] for s in ok(stack, "schedules", "list")}
    table = run(stack, "schedules", "list")
    assert table.returncode == 0 and schedule_id in table.stdout

    changed = ok(stack, "schedules", "update", schedule_id, "--cron", "30 4 * * *", "--payload",
                 '{"n": 2}')  # fmt: skip
    assert changed["cron"] == "30 4 * * *" and changed["task"]["payload"] == {"n": 2}
    assert changed["task"]["priority"] == 3 and changed["description"] == "nightly"
    nothing = run(stack, "schedules", "update", schedule_id)
    assert nothing.returncode == 2 and "at least one" in nothing.stderr

    assert ok(stack, "schedules", "pause", schedule_id)["paused"] is True
    assert "paused" not in ok(stack, "schedules", "resume", schedule_id)  # false: omitted

    triggered = ok(stack, "schedules", "trigger", schedule_id, "--watch")
    assert triggered["status"] == "TASK_STATUS_SUCCESS"
    assert triggered["schedule_id"] == schedule_id and "fire_time" in triggered
    made = ok(stack, "list", "--schedule", schedule_id)
    assert [t["id"] for t in made] == [triggered["id"]]
    shown = run(stack, "get", triggered["id"])
    assert f"from schedule {schedule_id}" in shown.stdout

    assert ok(stack, "schedules", "delete", schedule_id) == {"id": schedule_id, "deleted": True}
    gone = run(stack, "schedules", "get", schedule_id)
    assert gone.returncode == 1 and "NOT_FOUND" in gone.stderr
    bad = run(stack, "schedules", "create", "not a cron", "demo.echo")
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "cron" in bad.stderr
    overlap = run(stack, "schedules", "create", "@daily", "demo.echo", "--overlap", "sometimes")
    assert overlap.returncode == 2
