"""The fleet: every worker process registers and heartbeats; a killed one turns LOST, a stopped
one STOPPED; ListWorkers shows each one's running tasks to their own tenant only."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from services.api.server import RunningApi
from taskscheduler.adapters.postgres.engine import make_async_engine, make_sync_engine
from taskscheduler.adapters.postgres.gauges import PostgresGauges
from taskscheduler.adapters.postgres.workers import (
    PostgresWorkerRegistry,
    PostgresWorkerRepository,
)
from taskscheduler.core.model import WorkerRegistration, WorkerState
from taskscheduler.settings import Settings
from taskscheduler.tokens import mint_token
from taskscheduler.v1 import task_pb2, worker_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests import helpers
from tests.conftest import TEST_SECRET
from tests.helpers import eventually, request, schedule, wait_for_status
from tests.servers import Servers, ServiceProcess, fresh_database, start_worker


async def list_workers(
    stub: TaskServiceStub, *states: worker_pb2.WorkerState.ValueType
) -> list[worker_pb2.Worker]:
    response = await stub.ListWorkers(pb.ListWorkersRequest(states=states))
    return list(response.workers)


async def processes_of(stub: TaskServiceStub, main_pid: int) -> list[worker_pb2.Worker]:
    """The main process of the worker whose pid is `main_pid`, then its pool processes."""
    workers = await list_workers(stub)
    main = [w for w in workers if w.pid == main_pid and not w.parent]
    return main + [w for w in workers if main and w.parent == main[0].name]


async def wait_for_processes(
    stub: TaskServiceStub, main_pid: int, count: int, state: int
) -> list[worker_pb2.Worker]:
    async def reached() -> list[worker_pb2.Worker] | None:
        processes = await processes_of(stub, main_pid)
        if len(processes) == count and all(p.state == state for p in processes):
            return processes
        return None

    return await eventually(reached)


@pytest.fixture
def own_worker(settings: Settings, log_dir: Path) -> Iterator[ServiceProcess]:
    process = start_worker(settings, log_dir, concurrency=2)
    yield process
    process.stop()


async def test_a_worker_registers_its_processes_and_heartbeats(
    stub: TaskServiceStub, own_worker: ServiceProcess, settings: Settings
) -> None:
    main, *pool = await wait_for_processes(
        stub, own_worker.popen.pid, 3, worker_pb2.WORKER_STATE_ONLINE
    )
    assert main.concurrency == 2 and main.name.endswith(f":{own_worker.popen.pid}")
    assert main.celery_hostname.startswith("test-") and main.version
    assert main.heartbeat_interval.ToTimedelta() == timedelta(seconds=1)
    assert not main.queues  # it serves every queue
    for process in pool:
        assert process.concurrency == 1 and process.celery_hostname == main.celery_hostname
        assert process.name == f"{process.host}:{process.pid}"
    first_beat = main.heartbeat_time.ToDatetime()

    async def beaten_again() -> worker_pb2.Worker | None:
        (again, *_) = await processes_of(stub, own_worker.popen.pid)
        return again if again.heartbeat_time.ToDatetime() > first_beat else None

    again = await eventually(beaten_again, within=5)  # a beat a second
    assert again.start_time == main.start_time


async def test_running_tasks_show_on_their_process_for_their_tenant_only(
    clean_db: None,
    api: RunningApi,
    stub: TaskServiceStub,
    own_worker: ServiceProcess,
    dispatcher: ServiceProcess,
) -> None:
    await wait_for_processes(stub, own_worker.popen.pid, 3, worker_pb2.WORKER_STATE_ONLINE)
    task = await schedule(stub, request("demo.sleep", {"seconds": 3}))
    running = await wait_for_status(stub, task.id, task_pb2.TASK_STATUS_RUNNING)
    workers = {w.name: w for w in await list_workers(stub)}
    runner = workers[running.attempts[-1].worker]
    assert list(runner.running_task_ids) == [task.id]
    assert task.id in workers[runner.parent].running_task_ids
    other = mint_token(TEST_SECRET, "tenant-other")
    async with helpers.channel(f"127.0.0.1:{api.port}", other) as channel:
        seen = {w.name: w for w in await list_workers(TaskServiceStub(channel))}
    assert runner.name in seen and not seen[runner.name].running_task_ids
    assert not seen[runner.parent].running_task_ids


async def test_a_killed_worker_turns_lost_and_a_stopped_one_stopped(
    stub: TaskServiceStub, settings: Settings, log_dir: Path
) -> None:
    killed = start_worker(settings, log_dir, concurrency=1)
    stopped = start_worker(settings, log_dir, concurrency=1)
    try:
        await wait_for_processes(stub, killed.popen.pid, 2, worker_pb2.WORKER_STATE_ONLINE)
        await wait_for_processes(stub, stopped.popen.pid, 2, worker_pb2.WORKER_STATE_ONLINE)
        killed.popen.send_signal(signal.SIGKILL)
        stopped.popen.send_signal(signal.SIGTERM)
        main, *_ = await wait_for_processes(
            stub, stopped.popen.pid, 2, worker_pb2.WORKER_STATE_STOPPED
        )
        assert main.HasField("stop_time")
        lost, *_ = await wait_for_processes(stub, killed.popen.pid, 2, worker_pb2.WORKER_STATE_LOST)
        assert not lost.HasField("stop_time")
        only_lost = await list_workers(stub, worker_pb2.WORKER_STATE_LOST)
        assert lost.name in {w.name for w in only_lost}
        assert all(w.state == worker_pb2.WORKER_STATE_LOST for w in only_lost)
    finally:
        killed.stop()
        stopped.stop()


async def test_list_workers_refuses_an_unknown_state(stub: TaskServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await list_workers(stub, worker_pb2.WorkerState.ValueType(42))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "states[0]" in (raised.value.details() or "")


def registration(name: str, heartbeat_seconds: float = 60) -> WorkerRegistration:
    return WorkerRegistration(
        name=name,
        host="host",
        pid=1,
        celery_hostname="celery@host",
        queues=("emails",),
        concurrency=4,
        version="1.0",
        heartbeat_seconds=heartbeat_seconds,
    )


async def test_the_registry_beats_forgets_and_counts(servers: Servers) -> None:
    own = Settings(database_url=fresh_database(servers.database_url, migrate=True))
    registry = PostgresWorkerRegistry(own.libpq_url)
    engine = make_async_engine(own)
    sync_engine = make_sync_engine(own)
    repository = PostgresWorkerRepository(engine)
    try:
        assert not registry.beat("a:1")  # not registered: the heartbeat registers again
        registry.register(registration("a:1"))
        registry.register(registration("b:2", heartbeat_seconds=0.01))
        registry.register(registration("c:3"))
        assert registry.beat("a:1")
        registry.stopped("c:3")
        await asyncio.sleep(0.1)
        listed = {w.registration.name: w for w in await repository.list("any")}
        assert {name: w.state for name, w in listed.items()} == {
            "a:1": WorkerState.ONLINE,
            "b:2": WorkerState.LOST,
            "c:3": WorkerState.STOPPED,
        }
        assert listed["a:1"].registration == registration("a:1")
        assert PostgresGauges(sync_engine).workers_by_state() == dict.fromkeys(WorkerState, 1)
        assert await repository.forget(timedelta(seconds=60)) == 0
        await asyncio.sleep(0.1)
        assert await repository.forget(timedelta(seconds=0.05)) == 3
        registry.register(registration("c:3"))  # the same name again: ONLINE afresh
        (again,) = await repository.list("any")
        assert again.state is WorkerState.ONLINE and again.stop_time is None
    finally:
        await engine.dispose()
        sync_engine.dispose()
