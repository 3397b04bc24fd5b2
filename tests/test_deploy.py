"""The container and Kubernetes files: valid against their schemas (the compose spec, the
Kubernetes API), and in agreement with the code: image, commands, ports and setting names."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import AliasChoices

from taskscheduler.devstack.stack import Stack, StackConfig
from taskscheduler.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"taskscheduler:{VERSION}"
DEFAULTS = Settings()
SETTING_NAMES = {f"TASKSCHED_{name.upper()}" for name in Settings.model_fields} | {
    alias  # DATABASE_URL, REDIS_URL, BROKER_URL: the names without the prefix
    for field in Settings.model_fields.values()
    if isinstance(field.validation_alias, AliasChoices)
    for alias in field.validation_alias.choices
    if isinstance(alias, str)
}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def resources() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def containers() -> list[dict[str, Any]]:
    found = []
    for resource in resources():
        spec = resource.get("spec", {}).get("template", {}).get("spec", {})
        found.extend(spec.get("containers", []))
    return found


def process_commands() -> dict[str, list[str]]:
    """The commands `make run` starts, without the interpreter's path."""
    stack = Stack(StackConfig(data_dir=ROOT / ".data"))
    commands = {
        process.name: without_hostname(process.command[1:]) for process in stack.planned_processes()
    }
    commands["migrate"] = ["-m", "taskscheduler.adapters.postgres.migrate"]
    return commands


def without_hostname(command: list[str]) -> list[str]:
    """`make run` names its one worker; in a container the host name tells workers apart."""
    if "--hostname" not in command:
        return command
    at = command.index("--hostname")
    return command[:at] + command[at + 2 :]


def without_interpreter(command: list[str]) -> list[str]:
    return command[1:] if command[0] in {"python", "python3"} else ["-m", *command]


def test_the_compose_file_follows_the_compose_spec() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(ROOT / "docker-compose.yml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_each_manifest_is_valid_kubernetes(path: Path) -> None:
    for resource in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(resource, "1.31", strict=True)


def test_every_process_runs_the_image_with_the_command_of_make_run() -> None:
    expected = process_commands()
    services = compose()["services"]
    for name, command in expected.items():
        assert without_interpreter(services[name]["command"]) == command, name
    for container in containers():
        assert container["image"] == IMAGE
        assert without_interpreter(container["command"]) == expected[container["name"]]
    assert compose()["x-service"]["image"] == IMAGE


def test_setting_names_are_real_settings() -> None:
    named = set(compose()["x-service"]["environment"])
    for resource in resources():
        if resource["kind"] == "ConfigMap":
            named |= set(resource["data"])
        if resource["kind"] == "Secret":
            named |= set(resource["stringData"])
    assert named <= SETTING_NAMES, named - SETTING_NAMES


def test_ports_agree_with_the_settings() -> None:
    declared = {
        port["containerPort"] for container in containers() for port in container.get("ports", [])
    }
    assert declared == {
        DEFAULTS.grpc_port,
        DEFAULTS.gateway_port,
        DEFAULTS.api_metrics_port,
        DEFAULTS.worker_metrics_port,
        DEFAULTS.dispatcher_metrics_port,
    }
    dockerfile = (ROOT / "Dockerfile").read_text()
    exposed = {int(port) for port in re.search(r"^EXPOSE (.+)$", dockerfile, re.M)[1].split()}  # type: ignore[index]
    assert exposed == declared
    services = compose()["services"]
    assert services["api"]["ports"] == [f"127.0.0.1:{DEFAULTS.grpc_port}:{DEFAULTS.grpc_port}"]
    assert services["gateway"]["ports"] == [
        f"127.0.0.1:{DEFAULTS.gateway_port}:{DEFAULTS.gateway_port}"
    ]
    worker_probe = " ".join(services["worker"]["healthcheck"]["test"])
    assert f":{DEFAULTS.worker_metrics_port}/metrics" in worker_probe
    dispatcher_probe = " ".join(services["dispatcher"]["healthcheck"]["test"])
    assert f":{DEFAULTS.dispatcher_metrics_port}/metrics" in dispatcher_probe


def test_the_image_is_multi_stage_and_runs_as_a_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) == 2
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "pip install" not in final_stage  # no build step in the image that runs
    assert re.search(r"^USER 10001$", final_stage, re.M)
    assert "HEALTHCHECK" in final_stage
    assert 'CMD ["python", "-m", "services.api"]' in final_stage
