"""Workflows and one-task dependencies over the real stack: the api in-process, a real worker
and dispatcher, PostgreSQL releasing each step in the transaction of its last dependency's
success."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import json_format

from taskscheduler.v1 import schedule_pb2, task_pb2, workflow_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.helpers import get, request, schedule, wait_for_status

S = task_pb2
W = workflow_pb2

pytestmark = pytest.mark.usefixtures("worker", "dispatcher", "clean_db")


def step(
    name: str,
    kind: str = "demo.echo",
    payload: dict[str, Any] | None = None,
    depends_on: Sequence[str] = (),
    max_attempts: int = 0,
) -> W.WorkflowStepSpec:
    template = schedule_pb2.TaskTemplate(kind=kind)
    template.payload.update({"step": name} if payload is None else payload)
    if max_attempts:
        template.retry_policy.max_attempts = max_attempts
    return W.WorkflowStepSpec(name=name, task=template, depends_on=list(depends_on))


async def create(
    stub: TaskServiceStub,
    steps: Sequence[W.WorkflowStepSpec],
    on_failure: W.FailurePolicy.ValueType = W.FAILURE_POLICY_UNSPECIFIED,
    request_id: str = "",
) -> W.Workflow:
    response: pb.CreateWorkflowResponse = await stub.CreateWorkflow(
        pb.CreateWorkflowRequest(steps=steps, on_failure=on_failure, request_id=request_id)
    )
    return response.workflow


async def finished(stub: TaskServiceStub, workflow_id: str) -> W.Workflow:
    """The workflow once terminal, followed by StreamWorkflow to its end."""
    last: pb.StreamWorkflowResponse | None = None
    stream = stub.StreamWorkflow(pb.StreamWorkflowRequest(workflow_id=workflow_id), timeout=60)
    async for event in stream:
        last = event
    assert last is not None and last.HasField("workflow")
    return last.workflow


async def tasks_of(stub: TaskServiceStub, workflow: W.Workflow) -> dict[str, task_pb2.Task]:
    return {s.name: await get(stub, s.task_id) for s in workflow.steps}


def started(task: task_pb2.Task) -> datetime:
    return task.attempts[0].start_time.ToDatetime()


def ended(task: task_pb2.Task) -> datetime:
    return task.finish_time.ToDatetime()


async def test_a_diamond_runs_each_step_after_its_dependencies_with_their_results(
    stub: TaskServiceStub,
) -> None:
    workflow = await create(
        stub,
        [
            step("fetch"),
            step("left", depends_on=["fetch"]),
            step("right", depends_on=["fetch"]),
            step("join", "demo.gather", {}, depends_on=["left", "right"]),
        ],
    )
    assert workflow.status == W.WORKFLOW_STATUS_RUNNING
    statuses = {s.name: s.status for s in workflow.steps}
    assert statuses["left"] == statuses["right"] == statuses["join"] == S.TASK_STATUS_BLOCKED
    names = [s.name for s in workflow.steps]
    assert (names[0], names[-1]) == ("fetch", "join")  # each after its dependencies
    done = await finished(stub, workflow.id)
    assert done.status == W.WORKFLOW_STATUS_SUCCESS
    assert done.finish_time.ToDatetime() >= done.create_time.ToDatetime()
    tasks = await tasks_of(stub, done)
    assert all(len(task.attempts) == 1 for task in tasks.values())
    assert started(tasks["left"]) >= ended(tasks["fetch"])
    assert started(tasks["right"]) >= ended(tasks["fetch"])
    assert started(tasks["join"]) >= max(ended(tasks["left"]), ended(tasks["right"]))
    received = json_format.MessageToDict(tasks["join"].result)["received"]
    assert received == {"left": {"step": "left"}, "right": {"step": "right"}}
    assert tasks["join"].workflow_id == workflow.id and tasks["join"].step_name == "join"
    assert set(tasks["join"].depends_on) == {tasks["left"].id, tasks["right"].id}


async def test_a_fan_in_starts_once_after_every_one_of_fifty_parents(
    stub: TaskServiceStub,
) -> None:
    parents = [step(f"part-{i}") for i in range(50)]
    workflow = await create(
        stub, [*parents, step("sum", "demo.gather", {}, [p.name for p in parents])]
    )
    done = await finished(stub, workflow.id)
    assert done.status == W.WORKFLOW_STATUS_SUCCESS
    tasks = await tasks_of(stub, done)
    fan_in = tasks.pop("sum")
    assert len(fan_in.attempts) == 1
    assert started(fan_in) >= max(ended(task) for task in tasks.values())
    received = json_format.MessageToDict(fan_in.result)["received"]
    assert received == {name: {"step": name} for name in tasks}


async def test_a_failure_cancels_the_whole_workflow_by_default(stub: TaskServiceStub) -> None:
    workflow = await create(
        stub,
        [
            step("breaks", "demo.fail", {}, max_attempts=1),
            step("after", depends_on=["breaks"]),
            step("long", "demo.sleep", {"seconds": 30}),
            step("after-long", depends_on=["long"]),
        ],
    )
    done = await finished(stub, workflow.id)
    assert done.status == W.WORKFLOW_STATUS_FAILED
    statuses = {s.name: s.status for s in done.steps}
    assert statuses == {
        "breaks": S.TASK_STATUS_FAILED,
        "after": S.TASK_STATUS_CANCELLED,
        "long": S.TASK_STATUS_CANCELLED,  # stopped while it ran
        "after-long": S.TASK_STATUS_CANCELLED,
    }
    after = await get(stub, next(s.task_id for s in done.steps if s.name == "after"))
    assert not after.attempts
    assert after.error.startswith("taskscheduler.DependencyFailed")


async def test_continue_cancels_only_what_depends_on_the_failure(stub: TaskServiceStub) -> None:
    workflow = await create(
        stub,
        [
            step("breaks", "demo.fail", {}, max_attempts=1),
            step("child", depends_on=["breaks"]),
            step("grandchild", depends_on=["child"]),
            step("independent", "demo.sleep", {"seconds": 0.5}),
            step("after-independent", depends_on=["independent"]),
        ],
        on_failure=W.FAILURE_POLICY_CONTINUE,
    )
    done = await finished(stub, workflow.id)
    assert done.status == W.WORKFLOW_STATUS_FAILED
    assert done.on_failure == W.FAILURE_POLICY_CONTINUE
    statuses = {s.name: s.status for s in done.steps}
    assert statuses == {
        "breaks": S.TASK_STATUS_FAILED,
        "child": S.TASK_STATUS_CANCELLED,
        "grandchild": S.TASK_STATUS_CANCELLED,
        "independent": S.TASK_STATUS_SUCCESS,
        "after-independent": S.TASK_STATUS_SUCCESS,
    }


async def test_cancel_workflow_cancels_every_unfinished_step(stub: TaskServiceStub) -> None:
    workflow = await create(
        stub,
        [step("slow", "demo.sleep", {"seconds": 30}), step("next", depends_on=["slow"])],
    )
    slow_id = next(s.task_id for s in workflow.steps if s.name == "slow")
    await wait_for_status(stub, slow_id, S.TASK_STATUS_RUNNING)
    cancel = pb.CancelWorkflowRequest(workflow_id=workflow.id)
    cancelled = (await stub.CancelWorkflow(cancel)).workflow
    statuses = {s.name: s.status for s in cancelled.steps}
    assert statuses == {"slow": S.TASK_STATUS_RUNNING, "next": S.TASK_STATUS_CANCELLED}
    done = await finished(stub, workflow.id)
    assert done.status == W.WORKFLOW_STATUS_CANCELLED
    assert {s.status for s in done.steps} == {S.TASK_STATUS_CANCELLED}
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stub.CancelWorkflow(cancel)
    assert again.value.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_stream_workflow_sends_the_state_then_each_step_change(
    stub: TaskServiceStub,
) -> None:
    first = step("a")
    first.run_at.FromDatetime(datetime.now(UTC) + timedelta(seconds=1))  # the stream opens first
    workflow = await create(stub, [first, step("b", depends_on=["a"])])
    events = [
        event
        async for event in stub.StreamWorkflow(
            pb.StreamWorkflowRequest(workflow_id=workflow.id), timeout=60
        )
    ]
    assert events[0].HasField("workflow")
    assert events[-1].status == W.WORKFLOW_STATUS_SUCCESS
    assert events[-1].workflow.status == W.WORKFLOW_STATUS_SUCCESS
    b_changes = [e.step.status for e in events if e.HasField("step") and e.step.name == "b"]
    assert b_changes[-1] == S.TASK_STATUS_SUCCESS
    assert all(e.status == W.WORKFLOW_STATUS_RUNNING for e in events[1:-1])


async def test_invalid_graphs_are_refused_naming_the_field_and_store_nothing(
    stub: TaskServiceStub, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    cases = {
        "steps[1].depends_on": [
            step("x", depends_on=["a"]),  # below the cycle, not on it
            step("a", depends_on=["c"]),
            step("c", depends_on=["a"]),
        ],
        "steps[1].depends_on: names no step": [step("a"), step("b", depends_on=["nope"])],
        "steps[1].name": [step("a"), step("a")],
        "steps[0].depends_on": [step("a", depends_on=["a"])],
        "steps[1].task.kind": [step("a"), step("b", "no.such.kind")],
        "steps": [],
    }
    for field, steps in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await create(stub, steps)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, field
        assert (refused.value.details() or "").startswith(field), (field, refused.value.details())
    assert db.execute("SELECT count(*) FROM workflows").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM tasks").fetchone() == (0,)


async def test_a_request_id_makes_creation_idempotent(stub: TaskServiceStub) -> None:
    steps = [step("a"), step("b", depends_on=["a"])]
    first = await create(stub, steps, request_id="nightly-2026-12-07")
    again = await create(stub, steps, request_id="nightly-2026-12-07")
    assert again.id == first.id
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await create(stub, [step("a")], request_id="nightly-2026-12-07")
    assert conflict.value.code() is grpc.StatusCode.ALREADY_EXISTS


async def test_list_workflows_pages_newest_first_and_list_tasks_filters_by_workflow(
    stub: TaskServiceStub,
) -> None:
    created = [await create(stub, [step("a"), step("b", depends_on=["a"])]) for _ in range(3)]
    first = await stub.ListWorkflows(pb.ListWorkflowsRequest(page_size=2))
    second = await stub.ListWorkflows(
        pb.ListWorkflowsRequest(page_size=2, page_token=first.next_page_token)
    )
    listed = [w.id for w in (*first.workflows, *second.workflows)]
    assert listed == [w.id for w in reversed(created)]
    assert not second.next_page_token
    assert all(w.step_count == 2 and not w.steps for w in first.workflows)
    steps = await stub.ListTasks(pb.ListTasksRequest(workflow_id=created[1].id))
    assert {t.id for t in steps.tasks} == {s.task_id for s in created[1].steps}


async def test_schedule_task_depends_on_waits_for_its_dependencies(stub: TaskServiceStub) -> None:
    slow = await schedule(stub, request("demo.sleep", {"seconds": 0.5}))
    message = request("demo.echo", {"after": "slow"})
    message.depends_on.append(slow.id)
    dependent = await schedule(stub, message)
    assert dependent.status == S.TASK_STATUS_BLOCKED
    done = await wait_for_status(stub, dependent.id, S.TASK_STATUS_SUCCESS)
    parent = await get(stub, slow.id)
    assert started(done) >= ended(parent)
    assert list(done.depends_on) == [slow.id]


async def test_schedule_task_depending_on_a_failed_task_is_cancelled(stub: TaskServiceStub) -> None:
    failing = await schedule(stub, request("demo.fail", {}, max_attempts=1))
    await wait_for_status(stub, failing.id, S.TASK_STATUS_FAILED)
    message = request("demo.echo")
    message.depends_on.append(failing.id)
    dependent = await schedule(stub, message)
    assert dependent.status == S.TASK_STATUS_CANCELLED
    stored = await get(stub, dependent.id)
    assert stored.error.startswith("taskscheduler.DependencyFailed")
    assert not stored.attempts


async def test_schedule_task_depending_on_an_unknown_task_is_refused(
    stub: TaskServiceStub,
) -> None:
    message = request("demo.echo")
    message.depends_on.extend(["8b1a9953-c461-4296-a8cf-2c8b1b2c2a51"])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await schedule(stub, message)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "depends_on[0]" in (refused.value.details() or "")
    message = request("demo.echo")
    message.depends_on.append("not-a-uuid")
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await schedule(stub, message)
    assert "depends_on[0]" in (malformed.value.details() or "")


async def test_steps_run_once_each_when_parents_end_together(stub: TaskServiceStub) -> None:
    """Twenty small diamonds at once: every join runs once, after both its parents."""
    workflows = await asyncio.gather(
        *(
            create(
                stub,
                [
                    step("root"),
                    step("x", depends_on=["root"]),
                    step("y", depends_on=["root"]),
                    step("join", "demo.gather", {}, ["x", "y"]),
                ],
            )
            for _ in range(20)
        )
    )
    for workflow in workflows:
        done = await finished(stub, workflow.id)
        assert done.status == W.WORKFLOW_STATUS_SUCCESS
        tasks = await tasks_of(stub, done)
        assert len(tasks["join"].attempts) == 1
        assert started(tasks["join"]) >= max(ended(tasks["x"]), ended(tasks["y"]))


async def test_a_step_spawns_a_fan_out_and_its_fan_in_at_run_time(stub: TaskServiceStub) -> None:
    workflow = await create(
        stub,
        [
            step("split", "demo.fanout", {"parts": 5}),
            step("after", depends_on=["split"]),
        ],
    )
    assert workflow.step_count == 2
    done = await finished(stub, workflow.id)
    assert done.status == W.WORKFLOW_STATUS_SUCCESS
    assert done.step_count == 2 + 5 + 1
    tasks = await tasks_of(stub, done)
    parts = {f"split/part-{n}" for n in range(1, 6)}
    assert set(tasks) == {"split", "after", "split/gather"} | parts
    assert all(len(task.attempts) == 1 for task in tasks.values())
    gather = tasks["split/gather"]
    assert started(gather) >= max(ended(tasks[name]) for name in parts)
    assert started(min((tasks[name] for name in parts), key=started)) >= ended(tasks["split"])
    received = json_format.MessageToDict(gather.result)["received"]
    assert received == {f"split/part-{n}": {"part": n} for n in range(1, 6)}
    split = json_format.MessageToDict(tasks["split"].result)
    assert split == {"spawned": 5, "gather": gather.id}


async def test_steps_spawned_by_a_failed_attempt_are_never_stored(stub: TaskServiceStub) -> None:
    """The first attempt spawns, then fails: only the second attempt's steps exist."""
    spec = step("split", "demo.fanout", {"parts": 3, "fail_times": 1}, max_attempts=2)
    spec.task.retry_policy.initial_backoff.FromMilliseconds(50)
    workflow = await create(stub, [spec])
    done = await finished(stub, workflow.id)
    assert done.status == W.WORKFLOW_STATUS_SUCCESS
    assert done.step_count == 1 + 3 + 1
    split = await get(stub, next(s.task_id for s in done.steps if s.name == "split"))
    assert [a.status for a in split.attempts] == [S.TASK_STATUS_FAILED, S.TASK_STATUS_SUCCESS]
    assert len({s.name for s in done.steps}) == len(done.steps)


async def test_spawning_outside_a_workflow_fails_the_task_naming_why(stub: TaskServiceStub) -> None:
    task = await schedule(stub, request("demo.fanout", {"parts": 1}))
    failed = await wait_for_status(stub, task.id, S.TASK_STATUS_FAILED)
    assert "spawn" in failed.error and "workflow" in failed.error
    assert len(failed.attempts) == 1  # a misuse: not retried
