"""The SDK's whole retry policy against the real stack: each of the five fields given to
schedule(), schedule_many() and a schedule's task template reaches the task, and a template's
fields change one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskscheduler.client import AsyncClient, Client, RetryOptions, RetryPolicy, task_request
from taskscheduler.devstack.stack import Stack

pytestmark = pytest.mark.e2e
ONE_BROKER = True  # the SDK's retry-policy fields, stored in PostgreSQL

FAR = datetime.now(UTC) + timedelta(days=30)  # never runs during the test: nothing to wait for
# Every field away from the service's default (3 attempts, 1 s, 300 s, x2, jitter on).
POLICY = RetryOptions(
    max_attempts=7,
    initial_backoff=timedelta(seconds=2.5),
    max_backoff=timedelta(seconds=40),
    backoff_multiplier=3.0,
    jitter=False,
)


def fields(policy: RetryPolicy) -> RetryOptions:
    return RetryOptions(
        max_attempts=policy.max_attempts,
        initial_backoff=policy.initial_backoff.ToTimedelta(),
        max_backoff=policy.max_backoff.ToTimedelta(),
        backoff_multiplier=policy.backoff_multiplier,
        jitter=policy.jitter,
    )


@pytest.fixture
def client(stack: Stack) -> Client:
    return Client(f"127.0.0.1:{stack.config.grpc_port}", token=stack.token(tenant="sdk-retry"))


def test_schedule_takes_every_field_of_the_policy(client: Client) -> None:
    with client:
        task = client.schedule("demo.echo", run_at=FAR, **POLICY)
        assert fields(client.get(task.id).retry_policy) == POLICY
        assert client.get(task.id).max_attempts == 7


def test_a_field_not_given_takes_the_default(client: Client) -> None:
    with client:
        task = client.schedule("demo.echo", run_at=FAR, initial_backoff=timedelta(seconds=9))
    policy = fields(task.retry_policy)
    assert policy["initial_backoff"] == timedelta(seconds=9)
    assert (policy["max_attempts"], policy["backoff_multiplier"], policy["jitter"]) == (3, 2, True)


def test_schedule_many_takes_every_field_of_the_policy(client: Client) -> None:
    with client:
        tasks = client.schedule_many(
            [task_request("demo.echo", {"n": 1}, run_at=FAR, **POLICY), task_request("demo.echo")]
        )
        assert [dict(task.payload) for task in tasks] == [{"n": 1}, {}]
        assert fields(client.get(tasks[0].id).retry_policy) == POLICY
        assert fields(tasks[1].retry_policy)["max_attempts"] == 3
        client.wait(tasks[1].id, timeout=30)


def test_a_schedule_template_takes_every_field_and_changes_them_one_by_one(
    client: Client,
) -> None:
    with client:
        schedule = client.create_schedule("0 3 * * *", "demo.echo", paused=True, **POLICY)
        try:
            assert fields(schedule.task.retry_policy) == POLICY
            task = client.trigger_schedule(schedule.id)
            assert fields(task.retry_policy) == POLICY
            client.wait(task.id, timeout=30)

            changed = client.update_schedule(
                schedule.id, max_backoff=timedelta(seconds=60), jitter=None
            )
            policy = changed.task.retry_policy
            assert fields(policy) == {**POLICY, "max_backoff": timedelta(seconds=60)}
            assert not policy.HasField("jitter")  # back to the default (read as False)
            cleared = client.update_schedule(
                schedule.id,
                max_attempts=None,
                initial_backoff=None,
                max_backoff=None,
                backoff_multiplier=None,
            )
            assert not cleared.task.HasField("retry_policy")
        finally:
            client.delete_schedule(schedule.id)


async def test_the_async_client_takes_every_field(stack: Stack) -> None:
    address = f"127.0.0.1:{stack.config.grpc_port}"
    async with AsyncClient(address, token=stack.token(tenant="sdk-retry-async")) as tasks:
        task = await tasks.schedule("demo.echo", run_at=FAR, **POLICY)
        assert fields((await tasks.get(task.id)).retry_policy) == POLICY
        [batched] = await tasks.schedule_many([task_request("demo.echo", run_at=FAR, **POLICY)])
        assert fields(batched.retry_policy) == POLICY
        schedule = await tasks.create_schedule("0 3 * * *", "demo.echo", paused=True, **POLICY)
        assert fields(schedule.task.retry_policy) == POLICY
        await tasks.delete_schedule(schedule.id)
