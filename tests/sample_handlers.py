"""A deployment's own handler module, loaded through TASKSCHED_HANDLER_MODULES in tests."""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from pathlib import Path

from pydantic import model_validator

from taskscheduler.core.kinds import PayloadModel, TaskContext, registry


class Greeting(PayloadModel):
    name: str


class Forever(PayloadModel):
    pass


@registry.register("sample.stubborn", payload=Forever)
def stubborn(payload: Forever, context: TaskContext) -> None:
    """Swallows every interruption: only killing its process stops it."""
    while True:
        with contextlib.suppress(BaseException):
            time.sleep(0.05)


@registry.register("sample.greet", payload=Greeting)
def greet(payload: Greeting, context: TaskContext) -> str:
    return f"hello {payload.name}"


class Buggy(PayloadModel):
    @model_validator(mode="before")
    @classmethod
    def _fails(cls, value: object) -> object:
        raise LookupError("internal detail: /srv/keys/signing.pem")


@registry.register("sample.buggy", payload=Buggy)
def buggy(payload: Buggy, context: TaskContext) -> None:
    """Never runs: its payload's validation fails with an error the service does not expect."""


class Marker(PayloadModel):
    path: str


@registry.register("sample.touch", payload=Marker)
def touch(payload: Marker, context: TaskContext) -> None:
    """Leaves a file behind: a test sees from outside the worker whether the handler ran."""
    Path(payload.path).touch()


class Lookup(PayloadModel):
    key: str


@registry.register("sample.lookup", payload=Lookup, non_retryable=(KeyError,))
def lookup(payload: Lookup, context: TaskContext) -> str:
    """A missing key stays missing however often it is tried: the kind declares KeyError
    non-retryable."""
    known: dict[str, str] = {}
    return known[payload.key]


class Nap(PayloadModel):
    seconds: float


@registry.register("sample.nap", payload=Nap, timeout=timedelta(milliseconds=300))
def nap(payload: Nap, context: TaskContext) -> None:
    """Sleeps; a nap longer than the kind's default timeout is stopped by it."""
    time.sleep(payload.seconds)
