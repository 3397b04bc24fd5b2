"""The SDK and taskctl import only the SDK, the generated stubs, gRPC, protobuf, typer and rich:
none of the server's code or dependencies (what lets the client distribution install alone)."""

import json
import subprocess
import sys

import pytest

SERVER_MODULES = frozenset(
    {
        "alembic",
        "celery",
        "fastapi",
        "gateway",
        "jwt",
        "kombu",
        "opentelemetry",
        "psycopg",
        "pydantic",
        "services",
        "sqlalchemy",
        "starlette",
    }
)
# The parts of taskscheduler the client distribution ships.
CLIENT_PACKAGES = ("taskscheduler.cli", "taskscheduler.client", "taskscheduler.v1")
CLIENT_MODULES = frozenset({"taskscheduler", "taskscheduler.core", "taskscheduler.core.limits"})


def imported_by(module: str) -> list[str]:
    """The modules loaded by `import module` in a fresh interpreter."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize("module", ["taskscheduler.client", "taskscheduler.cli"])
def test_the_client_imports_no_server_module(module: str) -> None:
    loaded = imported_by(module)
    assert sorted(SERVER_MODULES.intersection(name.split(".")[0] for name in loaded)) == []
    ours = [name for name in loaded if name.split(".")[0] == "taskscheduler"]
    foreign = [
        name for name in ours if not name.startswith(CLIENT_PACKAGES) and name not in CLIENT_MODULES
    ]
    assert foreign == []
