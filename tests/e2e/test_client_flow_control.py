"""The Python SDK's queues and schedules against the real stack: a paused queue holds its tasks
until resumed, purge cancels the waiting ones, update changes only the settings given; schedules
are created, fired, changed, paused and deleted (skipped while the api answers UNIMPLEMENTED)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from taskscheduler.client import (
    AsyncClient,
    Client,
    ClientError,
    OverlapPolicy,
    QueueState,
    Task,
    TaskNotFinished,
    retry_policy,
    status_name,
)
from taskscheduler.devstack.stack import Stack

pytestmark = pytest.mark.e2e

FAR = datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture
def client(stack: Stack) -> Iterator[Client]:
    with Client(f"127.0.0.1:{stack.config.grpc_port}", token=stack.token(tenant="sdk-flow")) as c:
        yield c


def test_a_paused_queue_holds_its_tasks_until_resumed(client: Client) -> None:
    queue = client.create_queue("holds", max_concurrent=2, rate_limit_per_second=50)
    assert queue.state == QueueState.QUEUE_STATE_RUNNING
    assert (queue.max_concurrent, queue.rate_limit.per_second) == (2, 50)
    assert queue.rate_limit.burst == 50  # 0 asked: one second's worth
    assert client.pause_queue("holds").state == QueueState.QUEUE_STATE_PAUSED

    task = client.schedule(
        "demo.echo", {"held": True}, queue="holds", priority=7, concurrency_key="customer-1"
    )
    assert (task.queue, task.priority, task.concurrency_key) == ("holds", 7, "customer-1")
    with pytest.raises(TaskNotFinished) as held:
        client.wait(task.id, timeout=1.5)
    assert status_name(held.value.task.status) == "PENDING"
    assert client.get_queue("holds").waiting_count == 1
    assert [t.id for t in client.list(queue="holds")] == [task.id]
    assert task.id not in {t.id for t in client.list(queue="default")}

    assert client.resume_queue("holds").state == QueueState.QUEUE_STATE_RUNNING
    done = client.wait(task.id, timeout=30)
    assert status_name(done.status) == "SUCCESS"
    assert dict(done.result.struct_value) == {"held": True}

    client.delete_queue("holds")  # nothing of it waits or runs any more
    with pytest.raises(ClientError) as gone:
        client.get_queue("holds")
    assert gone.value.code is grpc.StatusCode.NOT_FOUND


def test_a_task_without_a_queue_or_priority_takes_the_defaults(client: Client) -> None:
    task = client.schedule("demo.echo", run_at=FAR)
    client.cancel(task.id)
    assert (task.queue, task.priority, task.concurrency_key) == ("default", 5, "")


def test_purge_cancels_the_waiting_tasks_and_counts_them(client: Client) -> None:
    client.create_queue("purged")
    client.pause_queue("purged")
    pending = [client.schedule("demo.echo", {"n": n}, queue="purged").id for n in range(3)]
    later = client.schedule("demo.echo", queue="purged", run_at=FAR).id
    with pytest.raises(ClientError) as in_use:
        client.delete_queue("purged")
    assert in_use.value.code is grpc.StatusCode.FAILED_PRECONDITION

    cancelled, queue = client.purge_queue("purged")
    assert cancelled == 4
    assert (queue.name, queue.waiting_count) == ("purged", 0)
    statuses = {status_name(client.get(task_id).status) for task_id in [*pending, later]}
    assert statuses == {"CANCELLED"}
    assert client.purge_queue("purged").cancelled_count == 0
    client.delete_queue("purged")


def test_update_changes_only_the_settings_given(client: Client) -> None:
    client.create_queue(
        "tuned", max_concurrent=5, rate_limit_per_second=10, timeout=timedelta(seconds=30)
    )
    queue = client.update_queue("tuned", max_concurrent_per_key=1)
    assert (queue.max_concurrent, queue.max_concurrent_per_key) == (5, 1)
    assert queue.rate_limit.per_second == 10
    assert queue.timeout.ToTimedelta() == timedelta(seconds=30)

    policy = retry_policy(max_attempts=4, initial_backoff=timedelta(seconds=2))
    queue = client.update_queue("tuned", rate_limit_per_second=None, retry_policy=policy)
    assert not queue.HasField("rate_limit")
    assert queue.retry_policy.max_attempts == 4
    assert queue.retry_policy.initial_backoff.ToTimedelta() == timedelta(seconds=2)
    assert queue.max_concurrent == 5

    queue = client.update_queue("tuned", timeout=None, rate_limit_per_second=3, rate_limit_burst=6)
    assert not queue.HasField("timeout")
    assert (queue.rate_limit.per_second, queue.rate_limit.burst) == (3, 6)
    assert queue.retry_policy.max_attempts == 4

    task = client.schedule("demo.echo", queue="tuned", run_at=FAR)  # takes the queue's defaults
    assert task.max_attempts == 4
    client.purge_queue("tuned")

    with pytest.raises(ValueError, match="at least one"):
        client.update_queue("tuned")
    with pytest.raises(ValueError, match="rate_limit_per_second"):
        client.update_queue("tuned", rate_limit_burst=3)


def test_queue_errors_and_pages(client: Client) -> None:
    with pytest.raises(ClientError) as bad:
        client.create_queue("Not A Name")
    assert bad.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert bad.value.field == "queue.name"
    client.create_queue("paged-a")
    client.create_queue("paged-b")
    with pytest.raises(ClientError) as taken:
        client.create_queue("paged-a")
    assert taken.value.code is grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(ClientError) as unknown:
        client.schedule("demo.echo", queue="no-such-queue")
    assert unknown.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert unknown.value.field == "queue"
    with pytest.raises(ClientError) as default:
        client.delete_queue("default")
    assert default.value.code is grpc.StatusCode.FAILED_PRECONDITION

    names = [queue.name for queue in client.list_queues(page_size=1)]
    assert {"default", "paged-a", "paged-b"} <= set(names)
    assert names == sorted(set(names))  # by name, each once
    for name in ("paged-a", "paged-b"):
        client.delete_queue(name)


async def test_the_async_client_manages_queues(stack: Stack) -> None:
    address = f"127.0.0.1:{stack.config.grpc_port}"
    async with AsyncClient(address, token=stack.token(tenant="sdk-flow-async")) as tasks:
        await tasks.create_queue("async-q", max_concurrent=1)
        paused = await tasks.pause_queue("async-q")
        assert paused.state == QueueState.QUEUE_STATE_PAUSED
        task = await tasks.schedule("demo.echo", {"a": 1}, queue="async-q", priority=2)
        assert (task.queue, task.priority) == ("async-q", 2)
        assert [t.id async for t in tasks.list(queue="async-q")] == [task.id]
        updated = await tasks.update_queue("async-q", max_concurrent=3)
        assert updated.max_concurrent == 3
        assert [q.name async for q in tasks.list_queues()] == ["async-q", "default"]
        purged = await tasks.purge_queue("async-q")
        assert purged.cancelled_count == 1
        resumed = await tasks.resume_queue("async-q")
        assert resumed.state == QueueState.QUEUE_STATE_RUNNING
        await tasks.delete_queue("async-q")
        assert [q.name async for q in tasks.list_queues()] == ["default"]


# Schedules.


def test_a_schedule_is_created_triggered_changed_paused_and_deleted(client: Client) -> None:
    schedule = client.create_schedule(
        "0 3 * * *",
        "demo.echo",
        {"report": "nightly"},
        time_zone="Europe/Paris",
        priority=3,
        concurrency_key="reports",
        max_attempts=2,
        overlap=OverlapPolicy.OVERLAP_POLICY_ALLOW,
        catchup_window=timedelta(minutes=5),
        description="the nightly report",
    )
    assert schedule.id and not schedule.paused
    assert (schedule.cron, schedule.time_zone) == ("0 3 * * *", "Europe/Paris")
    assert schedule.task.kind == "demo.echo"
    assert dict(schedule.task.payload) == {"report": "nightly"}
    assert (schedule.task.priority, schedule.task.concurrency_key) == (3, "reports")
    assert schedule.overlap == OverlapPolicy.OVERLAP_POLICY_ALLOW
    assert schedule.catchup_window.ToTimedelta() == timedelta(minutes=5)
    fires = [t.ToDatetime(tzinfo=UTC) for t in schedule.next_fire_times]
    assert fires and fires == sorted(fires) and fires[0] > datetime.now(UTC)
    read = client.get_schedule(schedule.id)
    assert (read.id, read.cron, read.task) == (schedule.id, schedule.cron, schedule.task)
    assert schedule.id in {s.id for s in client.list_schedules(page_size=1)}

    task = client.trigger_schedule(schedule.id)
    assert (task.schedule_id, task.kind, task.priority) == (schedule.id, "demo.echo", 3)
    assert task.HasField("fire_time")
    assert status_name(client.wait(task.id, timeout=30).status) == "SUCCESS"
    assert [t.id for t in client.list(schedule_id=schedule.id)] == [task.id]

    changed = client.update_schedule(schedule.id, cron="30 4 * * *", payload={"report": "late"})
    assert changed.cron == "30 4 * * *"
    assert dict(changed.task.payload) == {"report": "late"}
    assert (changed.task.priority, changed.task.concurrency_key) == (3, "reports")  # kept
    assert (changed.time_zone, changed.description) == ("Europe/Paris", "the nightly report")
    changed = client.update_schedule(schedule.id, description="moved", priority=None)
    assert changed.description == "moved"
    assert not changed.task.HasField("priority") or changed.task.priority == 5  # the default
    assert changed.cron == "30 4 * * *"

    paused = client.pause_schedule(schedule.id)
    assert paused.paused and not paused.next_fire_times
    assert client.pause_schedule(schedule.id).paused  # idempotent
    fired = client.trigger_schedule(schedule.id)  # fires even paused
    assert fired.schedule_id == schedule.id
    resumed = client.resume_schedule(schedule.id)
    assert not resumed.paused and resumed.next_fire_times

    client.delete_schedule(schedule.id)
    with pytest.raises(ClientError) as gone:
        client.get_schedule(schedule.id)
    assert gone.value.code is grpc.StatusCode.NOT_FOUND
    assert client.get(task.id).schedule_id == schedule.id  # its tasks stay
    client.wait(fired.id, timeout=30)


def test_a_schedule_fires_on_its_own(client: Client) -> None:
    schedule = client.create_schedule(
        "* * * * * *", "demo.echo", {"tick": True}, overlap=OverlapPolicy.OVERLAP_POLICY_ALLOW
    )
    try:
        deadline = time.monotonic() + 20
        made: list[Task] = []
        while len(made) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            made = list(client.list(schedule_id=schedule.id))
    finally:
        client.delete_schedule(schedule.id)
    assert len(made) >= 2, "a schedule firing every second made fewer than 2 tasks in 20 s"
    fire_times = [task.fire_time.ToDatetime() for task in made]
    assert len(set(fire_times)) == len(fire_times)  # each fire made exactly one task
    assert all(task.kind == "demo.echo" and task.queue == "default" for task in made)


def test_a_schedule_can_be_created_paused(client: Client) -> None:
    schedule = client.create_schedule("* * * * * *", "demo.echo", paused=True)
    try:
        assert schedule.paused, "CreateSchedule ignored Schedule.paused"
        assert not schedule.next_fire_times
        time.sleep(2)
        assert list(client.list(schedule_id=schedule.id)) == []  # it never fired
    finally:
        client.delete_schedule(schedule.id)


def test_schedule_errors_name_the_field(client: Client) -> None:
    with pytest.raises(ClientError) as cron:
        client.create_schedule("not a cron", "demo.echo")
    assert cron.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert cron.value.field == "cron"
    with pytest.raises(ClientError) as zone:
        client.create_schedule("@daily", "demo.echo", time_zone="Mars/Olympus_Mons")
    assert (zone.value.code, zone.value.field) == (grpc.StatusCode.INVALID_ARGUMENT, "time_zone")
    with pytest.raises(ClientError) as kind:
        client.create_schedule("@daily", "no.such.kind")
    assert kind.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert kind.value.field == "task.kind"
    with pytest.raises(ClientError) as unknown:
        client.get_schedule("00000000-0000-4000-8000-000000000000")
    assert unknown.value.code is grpc.StatusCode.NOT_FOUND


async def test_the_async_client_manages_schedules(stack: Stack) -> None:
    address = f"127.0.0.1:{stack.config.grpc_port}"
    async with AsyncClient(address, token=stack.token(tenant="sdk-flow-async")) as tasks:
        schedule = await tasks.create_schedule("@hourly", "demo.echo", {"a": 1})
        assert [s.id async for s in tasks.list_schedules()] == [schedule.id]
        changed = await tasks.update_schedule(schedule.id, kind="demo.echo", queue="default")
        assert changed.task.queue == "default"
        assert (await tasks.pause_schedule(schedule.id)).paused
        task = await tasks.trigger_schedule(schedule.id)
        assert task.schedule_id == schedule.id
        assert status_name((await tasks.wait(task.id, timeout=30)).status) == "SUCCESS"
        assert not (await tasks.resume_schedule(schedule.id)).paused
        assert (await tasks.get_schedule(schedule.id)).id == schedule.id
        await tasks.delete_schedule(schedule.id)
        assert [s.id async for s in tasks.list_schedules()] == []
