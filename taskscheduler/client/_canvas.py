"""Workflows as Celery's canvas builds them (`task`, `chain`, `group`, `chord`), or step by
step (`WorkflowPlan`), made into a CreateWorkflow request. No I/O: both clients submit them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Unpack

from taskscheduler.client._common import RetryOptions, task_template
from taskscheduler.v1 import schedule_pb2, workflow_pb2
from taskscheduler.v1 import task_service_pb2 as pb


@dataclass(frozen=True)
class StepTemplate:
    """One step to be: its name (None: named after its kind and place when built), its task,
    and when to run it at the earliest."""

    name: str | None
    task: schedule_pb2.TaskTemplate
    run_at: datetime | None = None


@dataclass(frozen=True)
class Canvas:
    """Steps and the edges between them (step index, index of a step it waits for). `heads`
    wait for nothing within it, `tails` are waited for by nothing within it: what follows a
    canvas in a chain waits for its tails, and its heads wait for what precedes it."""

    steps: tuple[StepTemplate, ...]
    edges: frozenset[tuple[int, int]]
    heads: tuple[int, ...]
    tails: tuple[int, ...]


def task(
    kind: str,
    payload: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    run_at: datetime | None = None,
    queue: str = "",
    priority: int | None = None,
    concurrency_key: str = "",
    timeout: timedelta | None = None,
    **retry: Unpack[RetryOptions],
) -> Canvas:
    """One step (Celery's signature): `kind` and `payload` with the task options schedule()
    takes; `name` is how other steps and `dependency_results` know it."""
    template = task_template(
        kind,
        payload,
        queue=queue,
        priority=priority,
        concurrency_key=concurrency_key,
        timeout=timeout,
        retry=retry,
    )
    return Canvas((StepTemplate(name, template, run_at),), frozenset(), (0,), (0,))


def _joined(parts: Iterable[Canvas]) -> tuple[Canvas, list[Canvas], list[int]]:
    """The parts side by side, with each part's offset into the joined steps."""
    steps: list[StepTemplate] = []
    edges: set[tuple[int, int]] = set()
    offsets: list[int] = []
    listed = list(parts)
    for part in listed:
        offsets.append(len(steps))
        edges |= {(a + offsets[-1], b + offsets[-1]) for a, b in part.edges}
        steps.extend(part.steps)
    return Canvas(tuple(steps), frozenset(edges), (), ()), listed, offsets


def group(*parts: Canvas) -> Canvas:
    """The parts run side by side (Celery's group)."""
    joined, listed, offsets = _joined(parts)
    heads = tuple(
        i + offset for part, offset in zip(listed, offsets, strict=True) for i in part.heads
    )
    tails = tuple(
        i + offset for part, offset in zip(listed, offsets, strict=True) for i in part.tails
    )
    return Canvas(joined.steps, joined.edges, heads, tails)


def chain(*parts: Canvas) -> Canvas:
    """Each part once the one before it has succeeded (Celery's chain)."""
    if not parts:
        raise ValueError("a chain needs at least one part")
    joined, listed, offsets = _joined(parts)
    edges = set(joined.edges)
    for before, after, at_before, at_after in zip(
        listed, listed[1:], offsets, offsets[1:], strict=False
    ):
        edges |= {(h + at_after, t + at_before) for h in after.heads for t in before.tails}
    heads = tuple(i + offsets[0] for i in listed[0].heads)
    tails = tuple(i + offsets[-1] for i in listed[-1].tails)
    return Canvas(joined.steps, frozenset(edges), heads, tails)


def chord(header: Iterable[Canvas], body: Canvas) -> Canvas:
    """`body` once every part of `header` has succeeded, with their results in its
    `context.dependency_results` (Celery's chord)."""
    return chain(group(*header), body)


class WorkflowPlan:
    """A workflow built step by step: `step()` adds a step and returns its name, for the
    `depends_on` of the steps after it. `specs`: steps to start from (a file's, say)."""

    def __init__(self, specs: Iterable[workflow_pb2.WorkflowStepSpec] = ()) -> None:
        self._specs = list(specs)

    def step(
        self,
        name: str,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        depends_on: Iterable[str] = (),
        run_at: datetime | None = None,
        queue: str = "",
        priority: int | None = None,
        concurrency_key: str = "",
        timeout: timedelta | None = None,
        **retry: Unpack[RetryOptions],
    ) -> str:
        template = task_template(
            kind,
            payload,
            queue=queue,
            priority=priority,
            concurrency_key=concurrency_key,
            timeout=timeout,
            retry=retry,
        )
        self._specs.append(_spec(StepTemplate(name, template, run_at), name, depends_on))
        return name

    def specs(self) -> list[workflow_pb2.WorkflowStepSpec]:
        return list(self._specs)


def _spec(
    template: StepTemplate, name: str, depends_on: Iterable[str]
) -> workflow_pb2.WorkflowStepSpec:
    spec = workflow_pb2.WorkflowStepSpec(name=name, task=template.task, depends_on=depends_on)
    if template.run_at is not None:
        spec.run_at.FromDatetime(template.run_at)
    return spec


def canvas_specs(canvas: Canvas) -> list[workflow_pb2.WorkflowStepSpec]:
    """The steps of a canvas, each unnamed one named `<kind>-<place>` (1 for the first)."""
    names = [step.name or f"{step.task.kind}-{place}" for place, step in enumerate(canvas.steps, 1)]
    waits: dict[int, list[str]] = {}
    for step, before in sorted(canvas.edges):
        waits.setdefault(step, []).append(names[before])
    return [
        _spec(step, names[index], waits.get(index, ())) for index, step in enumerate(canvas.steps)
    ]


def workflow_request(
    steps: Canvas | WorkflowPlan,
    *,
    name: str = "",
    on_failure: workflow_pb2.FailurePolicy.ValueType = workflow_pb2.FAILURE_POLICY_UNSPECIFIED,
    request_id: str | None = None,
) -> pb.CreateWorkflowRequest:
    """What create_workflow() sends. Without a `request_id` one is made up, so that a retried
    call never creates the workflow twice."""
    specs = steps.specs() if isinstance(steps, WorkflowPlan) else canvas_specs(steps)
    return pb.CreateWorkflowRequest(
        name=name,
        steps=specs,
        on_failure=on_failure,
        request_id=request_id or str(uuid.uuid4()),
    )
