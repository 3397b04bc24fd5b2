"""The demo kinds: demo.sleep, demo.echo and demo.fail, to try the service and watch it work."""

from __future__ import annotations

import time
from typing import Any

import pydantic

from taskscheduler.core.kinds import PayloadModel, TaskContext, registry


class SleepPayload(PayloadModel):
    seconds: float = pydantic.Field(default=1.0, ge=0, le=3600, description="How long to sleep.")


class EchoPayload(pydantic.BaseModel):
    """Any JSON object; it is returned as the result."""

    model_config = pydantic.ConfigDict(extra="allow")


class FailPayload(PayloadModel):
    fail_times: int | None = pydantic.Field(
        default=None,
        ge=0,
        description="Fail the first n attempts, then succeed; unset: always fail.",
    )
    message: str = pydantic.Field(default="demo failure", max_length=1000)


class DemoFailure(RuntimeError):
    """The error demo.fail raises."""


@registry.register("demo.sleep", payload=SleepPayload)
def sleep(payload: SleepPayload, context: TaskContext) -> dict[str, Any]:
    time.sleep(payload.seconds)
    return {"slept": payload.seconds}


@registry.register("demo.echo", payload=EchoPayload)
def echo(payload: EchoPayload, context: TaskContext) -> dict[str, Any]:
    return payload.model_dump()


@registry.register("demo.fail", payload=FailPayload)
def fail(payload: FailPayload, context: TaskContext) -> dict[str, Any]:
    if payload.fail_times is not None and context.attempt > payload.fail_times:
        return {"succeeded_on_attempt": context.attempt}
    raise DemoFailure(f"{payload.message} (attempt {context.attempt})")
