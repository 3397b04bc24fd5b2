"""RabbitMQ as the broker (BROKER_URL=amqp://...), on a node of the tests' own: tasks run through
quorum queues with publisher confirms, and a lost message, a duplicated one and a broker restart
lose nothing and run nothing twice."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from amqp.exceptions import PreconditionFailed
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.exceptions import OperationalError

from services.api.server import RunningApi, start_api
from taskscheduler.adapters.broker import celery_queue_name, make_publisher
from taskscheduler.core.model import DEFAULT_QUEUE
from taskscheduler.core.ports import TaskMessage
from taskscheduler.devstack.embedded import EmbeddedRabbitMQ, free_port, rabbitmq_server
from taskscheduler.settings import Settings
from taskscheduler.v1 import task_pb2
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests import helpers
from tests.helpers import follow, request, schedule
from tests.servers import ServiceProcess, start_dispatcher, start_worker

pytestmark = pytest.mark.skipif(
    rabbitmq_server() is None, reason="no rabbitmq-server: `make test` installs Debian's"
)

S = task_pb2


@pytest.fixture(scope="module")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRabbitMQ]:
    node = EmbeddedRabbitMQ(tmp_path_factory.mktemp("rabbitmq"), free_port())
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def amqp_settings(settings: Settings, rabbitmq: EmbeddedRabbitMQ) -> Settings:
    return settings.model_copy(
        update={"broker_url": rabbitmq.url, "celery_queue": f"amqp-{uuid.uuid4().hex[:8]}"}
    )


@pytest.fixture(scope="module")
async def amqp_stub(amqp_settings: Settings, token: str) -> AsyncIterator[TaskServiceStub]:
    running: RunningApi = await start_api(amqp_settings)
    async with helpers.channel(f"127.0.0.1:{running.port}", token) as channel:
        yield TaskServiceStub(channel)
    await running.stop()


@pytest.fixture(scope="module")
def amqp_dispatcher(amqp_settings: Settings, log_dir: Path) -> Iterator[ServiceProcess]:
    process = start_dispatcher(amqp_settings, log_dir)
    yield process
    process.stop()


@pytest.fixture
def amqp_worker(amqp_settings: Settings, log_dir: Path) -> Iterator[ServiceProcess]:
    process = start_worker(amqp_settings, log_dir)
    yield process
    process.stop()


def broker(settings: Settings) -> Any:
    """A kombu connection to the broker of `settings` (kombu has no types)."""
    return Connection(settings.celery_broker_url)  # type: ignore[no-untyped-call]


def the_queue(settings: Settings) -> str:
    return celery_queue_name(settings, DEFAULT_QUEUE)


async def run_all(stub: TaskServiceStub, count: int) -> list[task_pb2.Task]:
    tasks = [await schedule(stub, request("demo.echo", {"n": n})) for n in range(count)]
    return [(await follow(stub, task.id))[-1].task for task in tasks]


async def test_tasks_run_through_a_durable_quorum_queue(
    clean_db: None,
    amqp_settings: Settings,
    amqp_stub: TaskServiceStub,
    amqp_dispatcher: ServiceProcess,
    amqp_worker: ServiceProcess,
) -> None:
    ended = await run_all(amqp_stub, 20)
    retried = await schedule(amqp_stub, request("demo.fail", {"fail_times": 1}, max_attempts=2))
    ended.append((await follow(amqp_stub, retried.id))[-1].task)
    assert {task.status for task in ended} == {S.TASK_STATUS_SUCCESS}
    assert ended[-1].attempt == 2
    with broker(amqp_settings) as connection:
        channel = connection.default_channel
        _, waiting, consumers = channel.queue_declare(the_queue(amqp_settings), passive=True)
        assert (waiting, consumers) == (0, 1)
        classic: Any = Queue(  # type: ignore[no-untyped-call]
            the_queue(amqp_settings),
            durable=True,
            channel=channel,
            queue_arguments={"x-queue-type": "classic"},
        )
        with pytest.raises(PreconditionFailed, match="x-queue-type"):
            classic.declare()  # RabbitMQ refuses: the queue is a quorum queue


async def test_a_lost_message_is_published_again_and_a_duplicate_runs_nothing_twice(
    clean_db: None,
    amqp_settings: Settings,
    amqp_stub: TaskServiceStub,
    amqp_dispatcher: ServiceProcess,
    log_dir: Path,
) -> None:
    tasks = [await schedule(amqp_stub, request("demo.echo", {"n": n})) for n in range(5)]
    with broker(amqp_settings) as connection:
        purged = connection.default_channel.queue_purge(the_queue(amqp_settings))
    assert purged and purged >= 1  # no worker yet: their messages, lost
    duplicate = TaskMessage(uuid.UUID(tasks[0].id), 1, None, DEFAULT_QUEUE)
    await make_publisher(amqp_settings).publish_many([duplicate, duplicate])
    worker = start_worker(amqp_settings, log_dir)
    try:
        ended = [(await follow(amqp_stub, task.id))[-1].task for task in tasks]
    finally:
        worker.stop()
    assert {task.status for task in ended} == {S.TASK_STATUS_SUCCESS}
    assert [len(task.attempts) for task in ended] == [1] * 5  # each run once


async def test_a_broker_restart_loses_nothing_and_runs_nothing_twice(
    clean_db: None,
    rabbitmq: EmbeddedRabbitMQ,
    amqp_stub: TaskServiceStub,
    amqp_dispatcher: ServiceProcess,
    amqp_worker: ServiceProcess,
) -> None:
    before = [await schedule(amqp_stub, request("demo.sleep", {"seconds": 0.2})) for _ in range(10)]
    rabbitmq.restart()
    after = [await schedule(amqp_stub, request("demo.echo", {"n": n})) for n in range(10)]
    ended = [(await follow(amqp_stub, task.id))[-1].task for task in before + after]
    assert {task.status for task in ended} == {S.TASK_STATUS_SUCCESS}
    assert all(len(task.attempts) == 1 for task in ended), [len(t.attempts) for t in ended]
    assert amqp_worker.popen.poll() is None and amqp_dispatcher.popen.poll() is None


def test_a_broker_that_is_down_is_said_so_at_publish(amqp_settings: Settings) -> None:
    unreachable = amqp_settings.model_copy(
        update={"broker_url": f"amqp://guest:guest@127.0.0.1:{free_port()}//"}
    )
    with pytest.raises(OperationalError), broker(unreachable) as connection:
        connection.ensure_connection(max_retries=1)
