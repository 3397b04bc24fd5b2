"""The SDK's canvas: chain, group and chord make the dependencies Celery's canvas would."""

from __future__ import annotations

import pytest

from taskscheduler.client import Canvas, WorkflowPlan, chain, chord, group, task
from taskscheduler.client._canvas import canvas_specs, workflow_request
from taskscheduler.v1 import workflow_pb2


def waits(canvas_or_plan: Canvas | WorkflowPlan) -> dict[str, list[str]]:
    request = workflow_request(canvas_or_plan)
    return {spec.name: sorted(spec.depends_on) for spec in request.steps}


def test_a_chain_makes_each_step_wait_for_the_one_before() -> None:
    flow = chain(task("demo.echo", name="a"), task("demo.echo", name="b"), task("x", name="c"))
    assert waits(flow) == {"a": [], "b": ["a"], "c": ["b"]}


def test_a_group_runs_side_by_side() -> None:
    assert waits(group(task("demo.echo", name="a"), task("demo.echo", name="b"))) == {
        "a": [],
        "b": [],
    }


def test_a_chord_joins_its_header_into_its_body() -> None:
    flow = chord([task("demo.echo", name="a"), task("demo.echo", name="b")], task("j", name="j"))
    assert waits(flow) == {"a": [], "b": [], "j": ["a", "b"]}


def test_canvases_nest_as_celerys_do() -> None:
    """chain(fetch, group(chain(l1, l2), r), join): the group waits for fetch, join for both
    branches' last steps."""
    flow = chain(
        task("k", name="fetch"),
        group(chain(task("k", name="l1"), task("k", name="l2")), task("k", name="r")),
        task("k", name="join"),
    )
    assert waits(flow) == {
        "fetch": [],
        "l1": ["fetch"],
        "l2": ["l1"],
        "r": ["fetch"],
        "join": ["l2", "r"],
    }


def test_unnamed_steps_are_named_after_their_kind_and_place() -> None:
    specs = canvas_specs(chain(task("demo.echo"), task("demo.sleep", {"seconds": 1})))
    assert [spec.name for spec in specs] == ["demo.echo-1", "demo.sleep-2"]
    assert list(specs[1].depends_on) == ["demo.echo-1"]
    assert dict(specs[1].task.payload) == {"seconds": 1}


def test_a_plan_keeps_its_steps_and_options() -> None:
    plan = WorkflowPlan()
    fetch = plan.step("fetch", "demo.echo", {"table": "orders"}, queue="etl", max_attempts=5)
    plan.step("load", "demo.echo", depends_on=[fetch], priority=9)
    request = workflow_request(
        plan, name="nightly", on_failure=workflow_pb2.FAILURE_POLICY_CONTINUE, request_id="k"
    )
    assert (request.name, request.on_failure, request.request_id) == (
        "nightly",
        workflow_pb2.FAILURE_POLICY_CONTINUE,
        "k",
    )
    first, second = request.steps
    assert (first.task.queue, first.task.retry_policy.max_attempts) == ("etl", 5)
    assert (list(second.depends_on), second.task.priority) == (["fetch"], 9)


def test_a_request_without_an_id_gets_one_so_that_retries_are_safe() -> None:
    assert workflow_request(task("demo.echo")).request_id
    assert (
        workflow_request(task("demo.echo")).request_id
        != workflow_request(task("demo.echo")).request_id
    )


def test_an_empty_chain_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        chain()
