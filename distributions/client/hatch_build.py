"""The client wheel's files, taken from the repository's tree two levels up (a hatchling hook)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ROOT = Path(__file__).resolve().parents[2]
# The packages of the `taskscheduler` namespace this distribution ships, and the core's module of
# limits, which the CLI checks options against (stdlib only; without the server's
# core/__init__.py, taskscheduler.core is then a namespace package).
SHIPPED = (
    "taskscheduler/cli",
    "taskscheduler/client",
    "taskscheduler/v1",
    "taskscheduler/core/limits.py",
)


class ClientFiles(BuildHookInterface):  # type: ignore[type-arg]
    """Adds the shipped packages to a standard wheel. An editable install adds nothing: its
    .pth puts the tree itself on sys.path (dev-mode-dirs), where a copy would go stale."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        for path in SHIPPED:
            build_data["force_include"][str(ROOT / path)] = path
