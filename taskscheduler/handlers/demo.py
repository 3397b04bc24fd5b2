"""The demo kinds: demo.sleep, demo.echo, demo.fail, demo.gather and demo.fanout, to try the
service and watch it work."""

from __future__ import annotations

import time
from typing import Any

import pydantic

from taskscheduler.core.kinds import NonRetryableError, PayloadModel, TaskContext, registry


class SleepPayload(PayloadModel):
    seconds: float = pydantic.Field(default=1.0, ge=0, le=3600, description="How long to sleep.")
    ignore_cancel: bool = pydantic.Field(
        default=False, description="Keep sleeping when cancelled (to watch the forced stop)."
    )


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
    retryable: bool = pydantic.Field(default=True, description="False: fail at once, no retry.")


class DemoFailure(RuntimeError):
    """The error demo.fail raises."""


CANCEL_CHECK_SECONDS = 0.05


@registry.register("demo.sleep", payload=SleepPayload)
def sleep(payload: SleepPayload, context: TaskContext) -> dict[str, Any]:
    """Sleeps, checking for a cancel and reporting its progress between short naps (as a long
    handler should)."""
    started = time.monotonic()
    deadline = started + payload.seconds
    while (left := deadline - time.monotonic()) > 0:
        if not payload.ignore_cancel:
            context.raise_if_cancelled()
        slept = time.monotonic() - started
        context.report_progress(slept, payload.seconds, f"slept {slept:.1f}s")
        time.sleep(min(left, CANCEL_CHECK_SECONDS))
    if payload.seconds:
        context.report_progress(payload.seconds, payload.seconds, "done")
    return {"slept": payload.seconds}


@registry.register("demo.echo", payload=EchoPayload)
def echo(payload: EchoPayload, context: TaskContext) -> dict[str, Any]:
    return payload.model_dump()


class GatherPayload(PayloadModel):
    pass


@registry.register("demo.gather", payload=GatherPayload)
def gather(payload: GatherPayload, context: TaskContext) -> dict[str, Any]:
    """A fan-in: returns the results of the tasks it depended on, by step name (by task id
    outside a workflow)."""
    return {"received": dict(context.dependency_results)}


class FanoutPayload(PayloadModel):
    parts: int = pydantic.Field(default=3, ge=1, le=1000, description="Children to spawn.")
    fail_times: int = pydantic.Field(
        default=0, ge=0, description="Fail the first n attempts after spawning (none stored)."
    )


@registry.register("demo.fanout", payload=FanoutPayload)
def fanout(payload: FanoutPayload, context: TaskContext) -> dict[str, Any]:
    """A dynamic fan-out and its fan-in, in a workflow: spawns `parts` demo.echo steps and a
    demo.gather step that waits for them all."""
    parts = [
        context.spawn("demo.echo", {"part": number}, name=f"part-{number}")
        for number in range(1, payload.parts + 1)
    ]
    gather = context.spawn("demo.gather", name="gather", depends_on=parts)
    if context.attempt <= payload.fail_times:
        raise DemoFailure(f"failing after spawning (attempt {context.attempt})")
    return {"spawned": len(parts), "gather": gather}


@registry.register("demo.fail", payload=FailPayload)
def fail(payload: FailPayload, context: TaskContext) -> dict[str, Any]:
    if payload.fail_times is not None and context.attempt > payload.fail_times:
        return {"succeeded_on_attempt": context.attempt}
    message = f"{payload.message} (attempt {context.attempt})"
    if not payload.retryable:
        raise NonRetryableError(message)
    raise DemoFailure(message)
