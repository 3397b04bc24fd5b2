"""The scope check every use case makes first."""

from __future__ import annotations

from taskscheduler.core.errors import PermissionDenied
from taskscheduler.core.model import Caller


def require(caller: Caller, scope: str) -> None:
    if scope not in caller.scopes:
        raise PermissionDenied(f"this operation needs the {scope} scope")
