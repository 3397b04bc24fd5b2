"""The Python SDK against the real stack: schedule, wait, watch, list, cancel, errors, and
the asyncio twin."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import json_format

from taskscheduler.client import (
    AsyncClient,
    Client,
    ClientError,
    Retries,
    TaskNotFinished,
    TaskStatus,
    WorkflowNotFinished,
    WorkflowStatus,
    chain,
    chord,
    status_name,
    task,
)
from taskscheduler.devstack.stack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(stack: Stack) -> Client:
    return Client(f"127.0.0.1:{stack.config.grpc_port}", token=stack.token(tenant="sdk"))


def test_wait_returns_the_finished_task(client: Client) -> None:
    with client:
        task = client.schedule("demo.echo", {"hello": "world"})
        assert status_name(task.status) == "PENDING"
        done = client.wait(task.id, timeout=30)
    assert status_name(done.status) == "SUCCESS"
    assert dict(done.result.struct_value) == {"hello": "world"}
    assert [status_name(a.status) for a in done.attempts] == ["SUCCESS"]


def test_watch_follows_a_task_to_its_end(client: Client) -> None:
    with client:
        task = client.schedule("demo.fail", {"fail_times": 1}, max_attempts=2)
        statuses = [status_name(event.status) for event in client.watch(task.id, timeout=30)]
    assert statuses[-1] == "SUCCESS"
    assert "RETRYING" in statuses
    assert all(a != b for a, b in itertools.pairwise(statuses))  # no repeats


def test_wait_gives_up_after_its_timeout(client: Client) -> None:
    with client:
        later = client.schedule("demo.echo", run_at=datetime.now(UTC) + timedelta(hours=1))
        with pytest.raises(TaskNotFinished) as raised:
            client.wait(later.id, timeout=0.5)
        assert raised.value.task.id == later.id
        assert status_name(client.cancel(later.id).status) == "CANCELLED"
        assert status_name(client.cancel(later.id).status) == "CANCELLED"  # idempotent


def test_list_iterates_over_pages(client: Client) -> None:
    with client:
        far = datetime(2100, 1, 1, tzinfo=UTC)
        ids = {client.schedule("demo.echo", run_at=far).id for _ in range(5)}
        listed = [
            task.id
            for task in client.list(statuses=[TaskStatus.TASK_STATUS_SCHEDULED], page_size=2)
        ]
        for task_id in ids:
            client.cancel(task_id)
    assert ids <= set(listed)
    assert len(listed) == len(set(listed))


def test_errors_name_the_code_the_reason_and_the_field(client: Client) -> None:
    with client:
        done = client.wait(client.schedule("demo.echo").id, timeout=30)
        with pytest.raises(ClientError) as finished:
            client.cancel(done.id)
        assert finished.value.code is grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(ClientError) as unknown:
            client.get("00000000-0000-4000-8000-000000000000")
        with pytest.raises(ClientError) as bad:
            client.schedule("no.such.kind")
    assert unknown.value.code is grpc.StatusCode.NOT_FOUND
    assert unknown.value.reason == "TASK_NOT_FOUND"
    assert bad.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert bad.value.field == "kind"


def test_a_retried_schedule_never_makes_two_tasks(client: Client) -> None:
    with client:
        first = client.schedule("demo.echo", {"n": 1}, request_id="sdk-once")
        again = client.schedule("demo.echo", {"n": 1}, request_id="sdk-once")
    assert first.id == again.id


def test_unavailable_is_tried_again_then_reported() -> None:
    retries = Retries(attempts=3, initial_backoff=0.01, max_backoff=0.02)
    with (
        Client("127.0.0.1:1", retries=retries, deadline=1) as nowhere,
        pytest.raises(ClientError) as raised,
    ):
        nowhere.get("00000000-0000-4000-8000-000000000000")
    assert raised.value.code is grpc.StatusCode.UNAVAILABLE


async def test_the_async_client(stack: Stack) -> None:
    address = f"127.0.0.1:{stack.config.grpc_port}"
    async with AsyncClient(address, token=stack.token(tenant="sdk-async")) as tasks:
        task = await tasks.schedule("demo.echo", {"async": True})
        statuses = [status_name(event.status) async for event in tasks.watch(task.id, timeout=30)]
        assert statuses[-1] == "SUCCESS"
        done = await tasks.wait(task.id, timeout=5)
        assert status_name(done.status) == "SUCCESS"
        listed = [t.id async for t in tasks.list(kind="demo.echo", page_size=1)]
        assert listed == [task.id]
    assert statuses[0] in {"PENDING", "RUNNING", "SUCCESS"}


def test_a_chord_runs_to_success_and_its_join_gets_the_results(client: Client) -> None:
    flow = chain(
        task("demo.echo", {"n": 0}, name="fetch"),
        chord(
            [task("demo.echo", {"n": 1}, name="left"), task("demo.echo", {"n": 2}, name="right")],
            task("demo.gather", name="join"),
        ),
    )
    with client:
        created = client.create_workflow(flow, name="sdk chord")
        done = client.wait_workflow(created.id, timeout=60)
        join = client.get(next(s.task_id for s in done.steps if s.name == "join"))
        listed = [t.id for t in client.list(workflow_id=created.id)]
    assert done.status == WorkflowStatus.Value("WORKFLOW_STATUS_SUCCESS")
    assert [s.name for s in done.steps] == ["fetch", "left", "right", "join"]
    assert json_format.MessageToDict(join.result)["received"] == {
        "left": {"n": 1},
        "right": {"n": 2},
    }
    assert sorted(listed) == sorted(s.task_id for s in done.steps)


async def test_the_asyncio_client_builds_watches_and_cancels_a_workflow(stack: Stack) -> None:
    address = f"127.0.0.1:{stack.config.grpc_port}"
    async with AsyncClient(address, token=stack.token(tenant="sdk")) as tasks:
        plan = tasks.workflow()
        nap = plan.step("nap", "demo.sleep", {"seconds": 30})
        plan.step("after", "demo.echo", depends_on=[nap])
        created = await tasks.create_workflow(plan)
        first = await anext(tasks.watch_workflow(created.id, timeout=30))
        assert first.workflow.id == created.id
        cancelled = await tasks.cancel_workflow(created.id)
        assert {s.name: status_name(s.status) for s in cancelled.steps}["after"] == "CANCELLED"
        done = await tasks.wait_workflow(created.id, timeout=30)
        again = await tasks.cancel_workflow(created.id)  # a retried cancel finds it cancelled
        listed = [w.id async for w in tasks.list_workflows(statuses=[done.status])]
    assert done.status == WorkflowStatus.Value("WORKFLOW_STATUS_CANCELLED")
    assert again.status == done.status
    assert created.id in listed


def test_wait_workflow_gives_up_after_its_timeout(client: Client) -> None:
    with client:
        later = datetime.now(UTC) + timedelta(hours=1)
        plan = client.workflow()
        plan.step("later", "demo.echo", run_at=later)
        created = client.create_workflow(plan)
        with pytest.raises(WorkflowNotFinished) as waited:
            client.wait_workflow(created.id, timeout=0.5)
        client.cancel_workflow(created.id)
    assert waited.value.workflow.id == created.id
