"""The two distributions: the client wheel installed alone in a fresh virtual environment (its
dependencies from the package index, none of the server's) schedules a task on the stack and
waits for it; the server wheel holds no generic top-level package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from taskscheduler.devstack.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
ONE_BROKER = True  # the wheels' contents; the task it runs is any other test's

ROOT = Path(__file__).resolve().parents[2]
CLIENT_PACKAGES = {"taskscheduler/cli", "taskscheduler/client", "taskscheduler/v1"}
CLIENT_MODULES = {"taskscheduler/core/limits.py"}  # the CLI checks its options against them
SERVER_ONLY = ("celery", "fastapi", "sqlalchemy", "psycopg", "opentelemetry")
NOT_IN_A_WHEEL = {"bench", "chaos", "tests", "services", "gateway"}
SCHEDULE_AND_WAIT = """
import sys
from taskscheduler.client import Client, status_name

address, token = sys.argv[1:]
with Client(address, token=token) as tasks:
    task = tasks.schedule("demo.echo", {"from": "the client wheel"}, max_attempts=2)
    print(status_name(tasks.wait(task.id, timeout=60).status))
"""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both wheels, built from this tree as a user would: {"client": ..., "server": ...}."""
    out = tmp_path_factory.mktemp("wheels")
    for project in (ROOT / "distributions" / "client", ROOT):
        pip(sys.executable, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(project))
    built = {path.name.split("-")[0]: path for path in out.glob("*.whl")}
    return {"client": built["taskscheduler_client"], "server": built["taskscheduler_server"]}


def pip(python: str | Path, *args: str) -> str:
    done = subprocess.run(
        [str(python), "-m", "pip", *args], capture_output=True, text=True, env=clean_env()
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def clean_env() -> dict[str, str]:
    """The environment without anything that would let the repository's code be imported."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}


def members(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if ".dist-info/" not in name}


def test_the_server_wheel_installs_no_generic_top_level_package(wheels: dict[str, Path]) -> None:
    names = members(wheels["server"])
    assert {name.split("/")[0] for name in names} == {"taskscheduler"}
    assert not {name.split("/")[0] for name in names} & NOT_IN_A_WHEEL
    assert not [name for name in names if name.startswith(tuple(CLIENT_PACKAGES))]
    assert not names & CLIENT_MODULES
    assert "taskscheduler/core/__init__.py" in names
    assert "taskscheduler/migrations/script.py.mako" in names  # data files travel too


def test_the_client_wheel_holds_the_sdk_taskctl_and_the_stubs_only(
    wheels: dict[str, Path],
) -> None:
    names = members(wheels["client"])
    packages = {"/".join(name.split("/")[:2]) for name in names - CLIENT_MODULES}
    assert packages == CLIENT_PACKAGES
    assert names & CLIENT_MODULES == CLIENT_MODULES
    assert "taskscheduler/v1/task_service_pb2_grpc.py" in names


def test_the_client_wheel_alone_schedules_and_waits(
    wheels: dict[str, Path], stack: Stack, tmp_path: Path
) -> None:
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    pip(python, "install", "--quiet", "--disable-pip-version-check", str(wheels["client"]))
    installed = {p["name"].lower() for p in json.loads(pip(python, "list", "--format", "json"))}
    assert "taskscheduler-client" in installed
    assert [name for name in installed if name.startswith(SERVER_ONLY)] == []

    address, token = f"127.0.0.1:{stack.config.grpc_port}", stack.token(tenant="wheel")
    script = tmp_path / "schedule_and_wait.py"
    script.write_text(SCHEDULE_AND_WAIT)
    done = subprocess.run(
        [str(python), "-I", str(script), address, token],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: only the installed wheel can answer the imports
        env=clean_env(),
    )
    assert (done.returncode, done.stdout.strip()) == (0, "SUCCESS"), done.stderr
    taskctl = tmp_path / "venv" / "bin" / "taskctl"
    command = [str(taskctl), "schedule", "demo.echo", "--watch", "--json"]
    shown = subprocess.run(
        [*command, "--address", address, "--token", token],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout.splitlines()[-1])["status"] == "TASK_STATUS_SUCCESS"
