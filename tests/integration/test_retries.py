"""Retries with backoff, timeouts, cancel in each state and lost workers, through the public
api, on real workers and dispatchers (lease 2 s, grace periods 1 s: see conftest)."""

from __future__ import annotations

import os
import signal
import uuid
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from taskscheduler.adapters.broker import make_publisher
from taskscheduler.core.model import DEFAULT_QUEUE
from taskscheduler.core.ports import TaskMessage
from taskscheduler.settings import Settings
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub
from tests.helpers import follow, get, request, schedule, wait_for_status, wait_until
from tests.servers import ServiceProcess, start_dispatcher

S = task_pb2
MS = timedelta(milliseconds=1)

pytestmark = pytest.mark.usefixtures("worker", "dispatcher")


async def test_fail_twice_then_succeed_waits_within_the_policy(stub: TaskServiceStub) -> None:
    message = request(
        "demo.fail",
        {"fail_times": 2},
        max_attempts=3,
        initial_backoff=300 * MS,
        multiplier=2,
        jitter=False,
    )
    task = await schedule(stub, message)
    events = await follow(stub, task.id)
    final = events[-1].task
    assert final.status == S.TASK_STATUS_SUCCESS and final.attempt == 3
    first, second, third = final.attempts
    assert [first.status, second.status, third.status] == [
        S.TASK_STATUS_FAILED,
        S.TASK_STATUS_FAILED,
        S.TASK_STATUS_SUCCESS,
    ]
    assert first.error_type == second.error_type == "taskscheduler.handlers.demo.DemoFailure"
    assert "Traceback" in first.traceback and "attempt 2" in second.error_message
    for before, after, delay in ((first, second, 300 * MS), (second, third, 600 * MS)):
        wait = after.start_time.ToDatetime() - before.finish_time.ToDatetime()
        # run_at is the failure's commit time plus the delay, both by the database's clock
        assert delay <= wait < delay + timedelta(seconds=2)
    statuses = [event.status for event in events]
    assert statuses.count(S.TASK_STATUS_RETRYING) == 2


async def test_retrying_shows_its_next_due_time(stub: TaskServiceStub) -> None:
    task = await schedule(
        stub, request("demo.fail", max_attempts=2, initial_backoff=timedelta(hours=1), jitter=False)
    )
    retrying = await wait_for_status(stub, task.id, S.TASK_STATUS_RETRYING)
    due = retrying.run_at.ToDatetime() - retrying.attempts[0].finish_time.ToDatetime()
    assert due == timedelta(hours=1)  # both written by one statement, by the database's clock
    assert retrying.error.startswith("taskscheduler.handlers.demo.DemoFailure")
    # cancelling a RETRYING task is immediate, and it never runs again
    cancelled = (await stub.CancelTask(pb.CancelTaskRequest(task_id=task.id))).task
    assert cancelled.status == S.TASK_STATUS_CANCELLED and cancelled.attempt == 1


async def test_always_failing_ends_failed_after_exactly_max_attempts(stub: TaskServiceStub) -> None:
    task = await schedule(stub, request("demo.fail", max_attempts=3, initial_backoff=50 * MS))
    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_FAILED
    assert len(final.attempts) == 3 and final.attempt == 3
    assert final.error.startswith(
        "taskscheduler.handlers.demo.DemoFailure: demo failure (attempt 3)"
    )


async def test_non_retryable_errors_fail_at_once(stub: TaskServiceStub) -> None:
    task = await schedule(stub, request("demo.fail", {"retryable": False}, max_attempts=5))
    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_FAILED and len(final.attempts) == 1
    assert final.attempts[0].error_type == "taskscheduler.core.kinds.NonRetryableError"


async def test_an_error_type_its_kind_declares_non_retryable_fails_at_once(
    stub: TaskServiceStub,
) -> None:
    message = request("sample.lookup", {"key": "missing"}, max_attempts=3, initial_backoff=50 * MS)
    final = (await follow(stub, (await schedule(stub, message)).id))[-1].task
    assert final.status == S.TASK_STATUS_FAILED
    assert final.attempt == 1 and len(final.attempts) == 1
    assert final.attempts[0].error_type == "builtins.KeyError"


async def test_a_kinds_default_timeout_applies_when_the_task_sets_none(
    stub: TaskServiceStub,
) -> None:
    task = await schedule(stub, request("sample.nap", {"seconds": 30}, max_attempts=1))
    assert task.timeout.ToTimedelta() == 300 * MS
    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_FAILED
    [attempt] = final.attempts
    assert attempt.error_type == "taskscheduler.TimeoutError"
    assert "timeout of 0.3s" in attempt.error_message


async def test_a_timeout_stops_the_attempt_and_retries_it(stub: TaskServiceStub) -> None:
    message = request(
        "demo.sleep",
        {"seconds": 30, "ignore_cancel": True},
        max_attempts=2,
        initial_backoff=50 * MS,
        timeout=500 * MS,
    )
    task = await schedule(stub, message)
    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_FAILED
    assert [a.error_type for a in final.attempts] == ["taskscheduler.TimeoutError"] * 2
    assert "timeout of 0.5s" in final.attempts[0].error_message
    ran = final.attempts[0].finish_time.ToDatetime() - final.attempts[0].start_time.ToDatetime()
    assert timedelta(milliseconds=500) <= ran < timedelta(seconds=5)


async def test_a_handler_that_ignores_its_timeout_is_killed_and_recorded(
    stub: TaskServiceStub,
) -> None:
    task = await schedule(stub, request("sample.stubborn", max_attempts=1, timeout=300 * MS))
    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_FAILED
    [attempt] = final.attempts
    assert attempt.error_type == "taskscheduler.TimeoutError"
    assert "was stopped" in attempt.error_message


async def test_cancel_a_running_task_that_checks_for_it(stub: TaskServiceStub) -> None:
    task = await schedule(stub, request("demo.sleep", {"seconds": 60}))
    await wait_for_status(stub, task.id, S.TASK_STATUS_RUNNING)
    asked = (await stub.CancelTask(pb.CancelTaskRequest(task_id=task.id))).task
    assert asked.status == S.TASK_STATUS_RUNNING  # asked to stop; ends CANCELLED once it has
    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_CANCELLED
    assert final.attempts[0].status == S.TASK_STATUS_CANCELLED
    assert final.attempts[0].error_type == "taskscheduler.core.kinds.TaskCancelled"


async def test_cancel_a_running_task_that_ignores_it_interrupts_it_after_the_grace(
    stub: TaskServiceStub, settings: Settings
) -> None:
    task = await schedule(stub, request("demo.sleep", {"seconds": 60, "ignore_cancel": True}))
    await wait_for_status(stub, task.id, S.TASK_STATUS_RUNNING)
    asked = (await stub.CancelTask(pb.CancelTaskRequest(task_id=task.id))).task
    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_CANCELLED
    [attempt] = final.attempts
    assert attempt.error_type == "taskscheduler.Cancelled"
    assert attempt.error_message == "stopped after a cancel request"  # interrupted, not killed
    # The handler had the grace period to stop by itself: both times are the database's.
    stopped_after = attempt.finish_time.ToDatetime() - asked.update_time.ToDatetime()
    assert stopped_after >= timedelta(seconds=settings.stop_grace_seconds)


async def test_cancel_a_running_task_that_cannot_be_interrupted_kills_it(
    stub: TaskServiceStub,
) -> None:
    task = await schedule(stub, request("sample.stubborn", max_attempts=3))
    await wait_for_status(stub, task.id, S.TASK_STATUS_RUNNING)
    await stub.CancelTask(pb.CancelTaskRequest(task_id=task.id))
    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_CANCELLED and final.attempt == 1
    assert final.attempts[0].error_type == "taskscheduler.Cancelled"


async def test_cancel_a_finished_task_is_failed_precondition(stub: TaskServiceStub) -> None:
    task = await schedule(stub, request("demo.echo"))
    done = (await follow(stub, task.id))[-1].task
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.CancelTask(pb.CancelTaskRequest(task_id=task.id))
    assert excinfo.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert (await get(stub, task.id)).update_time == done.update_time


async def test_a_killed_worker_process_loses_no_task(stub: TaskServiceStub) -> None:
    task = await schedule(stub, request("demo.sleep", {"seconds": 3}, initial_backoff=50 * MS))
    running = await wait_for_status(stub, task.id, S.TASK_STATUS_RUNNING)
    pool_pid = int(running.attempts[0].worker.rsplit(":", 1)[1])
    os.kill(pool_pid, signal.SIGKILL)
    final = (await follow(stub, task.id))[-1].task
    assert final.status == S.TASK_STATUS_SUCCESS and final.attempt == 2
    lost = final.attempts[0]
    assert lost.status == S.TASK_STATUS_FAILED
    assert lost.error_type == "taskscheduler.WorkerLost"


async def test_two_dispatchers_publish_each_due_task_once_per_attempt(
    stub: TaskServiceStub, settings: Settings, log_dir: Path, worker: ServiceProcess
) -> None:
    second = start_dispatcher(settings, log_dir)
    try:
        soon = timedelta(seconds=1)
        tasks = [
            await schedule(stub, request("demo.echo", {"i": i}, run_in=soon)) for i in range(40)
        ]
        retried = await schedule(
            stub,
            request(
                "demo.fail",
                {"fail_times": 1},
                max_attempts=2,
                initial_backoff=300 * MS,
                jitter=False,
                run_in=soon,
            ),
        )
        finals = [(await follow(stub, task.id))[-1].task for task in [*tasks, retried]]
    finally:
        second.stop()
    assert [(final.status, final.attempt) for final in finals] == [
        (S.TASK_STATUS_SUCCESS, 1)
    ] * 40 + [(S.TASK_STATUS_SUCCESS, 2)]
    await delivered_everything_published_so_far(settings, worker)
    # Each publish is a delivery, and the worker logs one line per delivery (a second one of
    # the same attempt would be "skipped").
    log = worker.log()
    for final in finals:
        for attempt in range(1, final.attempt + 1):
            assert log.count(f"task {final.id} attempt {attempt}: ") == 1, (final.id, attempt)


async def delivered_everything_published_so_far(settings: Settings, worker: ServiceProcess) -> None:
    """Publishes a message of no task behind the others, and waits for the worker to skip it:
    a second publish of any attempt would have been delivered by then."""
    marker = uuid.uuid4()
    await make_publisher(settings).publish_many([TaskMessage(marker, 1, None, DEFAULT_QUEUE)])
    await wait_until(lambda: f"task {marker} attempt 1: skipped" in worker.log())
