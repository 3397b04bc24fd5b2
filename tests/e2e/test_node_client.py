"""A client built from protos/ by another toolchain (Node.js, @grpc/proto-loader) follows a task
to SUCCESS through StreamStatus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from taskscheduler.devstack.stack import Stack

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "node"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("npm") is None, reason="Node.js and npm are not installed"),
]


@pytest.fixture(scope="module")
def node_client() -> Path:
    if not (CLIENT_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CLIENT_DIR, check=True)
    return CLIENT_DIR / "schedule_and_watch.mjs"


def test_node_client_schedules_and_streams_to_success(stack: Stack, node_client: Path) -> None:
    address = f"127.0.0.1:{stack.config.grpc_port}"
    result = subprocess.run(
        ["node", str(node_client), address, "demo.sleep", '{"seconds": 0.3}'],
        env=os.environ | {"TASKSCHED_TOKEN": stack.token()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    statuses = [event["status"] for event in events]
    assert statuses[-1] == "TASK_STATUS_SUCCESS"
    assert set(statuses) <= {"TASK_STATUS_PENDING", "TASK_STATUS_RUNNING", "TASK_STATUS_SUCCESS"}
    assert len({event["task_id"] for event in events}) == 1
