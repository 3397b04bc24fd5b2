"""A deployment's own handler module, loaded through TASKSCHED_HANDLER_MODULES in tests."""

from __future__ import annotations

from taskscheduler.core.kinds import PayloadModel, TaskContext, registry


class Greeting(PayloadModel):
    name: str


@registry.register("sample.greet", payload=Greeting)
def greet(payload: Greeting, context: TaskContext) -> str:
    return f"hello {payload.name}"
