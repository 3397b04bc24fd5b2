"""The gRPC TaskService over a real aio channel: validation, errors, listing, cancel, health."""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.api.server import SERVICE_NAME, RunningApi
from taskscheduler.v1 import queue_pb2, schedule_pb2, task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

PENDING = task_pb2.TASK_STATUS_PENDING
SCHEDULED = task_pb2.TASK_STATUS_SCHEDULED
CANCELLED = task_pb2.TASK_STATUS_CANCELLED


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            info = error_details_pb2.ErrorInfo()
            assert status.details[0].Unpack(info)
            return info
    raise AssertionError("no ErrorInfo detail")


def count_tasks(db: psycopg.Connection[tuple[object, ...]]) -> int:
    row = db.execute("SELECT count(*) FROM tasks").fetchone()
    assert row is not None
    count = row[0]
    assert isinstance(count, int)
    return count


def schedule_request(kind: str = "demo.echo", **payload: Any) -> pb.ScheduleTaskRequest:
    request = pb.ScheduleTaskRequest(kind=kind)
    request.payload.update(payload)
    return request


async def test_schedule_stores_a_pending_task(
    stub: TaskServiceStub, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    task = (await stub.ScheduleTask(schedule_request(n=2))).task
    assert uuid.UUID(task.id).version == 4
    assert task.status == PENDING
    assert dict(task.payload) == {"n": 2}
    assert task.max_attempts == 3 and task.retry_policy.jitter
    row = db.execute("SELECT id::text, status, created_at FROM tasks").fetchone()
    assert row is not None and row[:2] == (task.id, "PENDING")
    fetched = (await stub.GetTask(pb.GetTaskRequest(task_id=task.id))).task
    assert fetched.id == task.id and fetched.kind == "demo.echo"


async def test_run_at_in_the_future_is_scheduled(stub: TaskServiceStub, clean_db: None) -> None:
    request = schedule_request()
    request.run_at.GetCurrentTime()
    request.run_at.seconds += 3600
    task = (await stub.ScheduleTask(request)).task
    assert task.status == SCHEDULED
    assert task.run_at.seconds == request.run_at.seconds


@pytest.mark.parametrize(
    ("request_", "field", "reason"),
    [
        (schedule_request("no.such.kind"), "kind", "UNKNOWN_KIND"),
        (schedule_request("demo.sleep", seconds="x"), "payload.seconds", "INVALID_PAYLOAD"),
        (schedule_request("demo.sleep", bogus=1), "payload.bogus", "INVALID_PAYLOAD"),
        (
            pb.ScheduleTaskRequest(
                kind="demo.echo", retry_policy=task_pb2.RetryPolicy(max_attempts=500)
            ),
            "retry_policy.max_attempts",
            "INVALID_ARGUMENT",
        ),
    ],
)
async def test_bad_requests_name_the_field_and_store_nothing(
    stub: TaskServiceStub,
    db: psycopg.Connection[tuple[object, ...]],
    request_: pb.ScheduleTaskRequest,
    field: str,
    reason: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.ScheduleTask(request_)
    assert excinfo.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in (excinfo.value.details() or "")
    info = error_info(excinfo.value)
    assert (info.reason, info.domain, info.metadata["field"]) == (reason, "taskscheduler", field)
    assert count_tasks(db) == 0


async def test_unknown_ids_are_not_found_never_pending(stub: TaskServiceStub) -> None:
    unknown = str(uuid.uuid4())
    for call in (
        stub.GetTask(pb.GetTaskRequest(task_id=unknown)),
        stub.CancelTask(pb.CancelTaskRequest(task_id=unknown)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            await call
        assert excinfo.value.code() is grpc.StatusCode.NOT_FOUND
        assert error_info(excinfo.value).reason == "TASK_NOT_FOUND"
    stream = stub.StreamStatus(pb.StreamStatusRequest(task_id=unknown))
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stream.read()
    assert excinfo.value.code() is grpc.StatusCode.NOT_FOUND


async def test_malformed_ids_are_invalid_arguments(stub: TaskServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.GetTask(pb.GetTaskRequest(task_id="../etc/passwd"))
    assert excinfo.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(excinfo.value).metadata["field"] == "task_id"


async def test_cancel_a_waiting_task_then_again_is_failed_precondition(
    stub: TaskServiceStub, clean_db: None
) -> None:
    request = schedule_request()
    request.run_at.GetCurrentTime()
    request.run_at.seconds += 3600
    task = (await stub.ScheduleTask(request)).task
    cancelled = (await stub.CancelTask(pb.CancelTaskRequest(task_id=task.id))).task
    assert cancelled.status == CANCELLED and cancelled.HasField("finish_time")
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.CancelTask(pb.CancelTaskRequest(task_id=task.id))
    assert excinfo.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    again = (await stub.GetTask(pb.GetTaskRequest(task_id=task.id))).task
    assert again.update_time == cancelled.update_time


async def test_list_tasks_pages_and_filters(stub: TaskServiceStub, clean_db: None) -> None:
    created = [(await stub.ScheduleTask(schedule_request(i=i))).task.id for i in range(5)]
    await stub.ScheduleTask(schedule_request("demo.sleep", seconds=0))
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListTasks(
            pb.ListTasksRequest(page_size=2, page_token=token, kind="demo.echo")
        )
        seen += [task.id for task in page.tasks]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(created))
    none = await stub.ListTasks(pb.ListTasksRequest(statuses=[task_pb2.TASK_STATUS_FAILED]))
    assert list(none.tasks) == []
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.ListTasks(pb.ListTasksRequest(page_size=5000))
    assert excinfo.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_idempotent_schedule(stub: TaskServiceStub, clean_db: None) -> None:
    request = schedule_request(n=1)
    request.request_id = "order-42"
    first = (await stub.ScheduleTask(request)).task
    second = (await stub.ScheduleTask(request)).task
    assert first.id == second.id
    different = schedule_request(n=2)
    different.request_id = "order-42"
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.ScheduleTask(different)
    assert excinfo.value.code() is grpc.StatusCode.ALREADY_EXISTS


async def test_health_and_reflection_are_served(channel: grpc.aio.Channel, api: RunningApi) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE_NAME):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for response in reflection.ServerReflectionInfo(iter([request])):
        names = {service.name for service in response.list_services_response.service}
        assert SERVICE_NAME in names and "grpc.health.v1.Health" in names
        break


async def test_concurrent_requests_with_one_key_make_one_task(
    stub: TaskServiceStub, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    request = schedule_request(n=1)
    request.request_id = "burst-1"
    responses = await asyncio.gather(*(stub.ScheduleTask(request) for _ in range(20)))
    assert len({response.task.id for response in responses}) == 1
    assert count_tasks(db) == 1


async def test_a_request_too_deep_to_parse_is_invalid_argument(
    stub: TaskServiceStub, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    nested: dict[str, Any] = {}
    inner = nested
    for _ in range(60):
        inner["d"] = {}
        inner = inner["d"]
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.ScheduleTask(schedule_request(**nested))
    assert excinfo.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(excinfo.value).metadata["field"] == "request"
    assert count_tasks(db) == 0


async def test_a_nul_character_in_the_kind_filter_is_invalid_argument(
    stub: TaskServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.ListTasks(pb.ListTasksRequest(kind="demo\x00echo"))
    assert excinfo.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(excinfo.value).metadata["field"] == "kind"


async def test_retry_copies_a_finished_task_and_refuses_one_still_waiting(
    stub: TaskServiceStub, clean_db: None
) -> None:
    request = schedule_request(n=7)
    request.run_at.GetCurrentTime()
    request.run_at.seconds += 3600
    request.retry_policy.max_attempts = 5
    request.timeout.seconds = 9
    waiting = (await stub.ScheduleTask(request)).task
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.RetryTask(pb.RetryTaskRequest(task_id=waiting.id))
    assert excinfo.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    await stub.CancelTask(pb.CancelTaskRequest(task_id=waiting.id))
    retry = pb.RetryTaskRequest(task_id=waiting.id, request_id="retry-once")
    copy = (await stub.RetryTask(retry)).task
    assert copy.id != waiting.id and copy.status == PENDING
    assert (copy.kind, dict(copy.payload), copy.max_attempts) == ("demo.echo", {"n": 7}, 5)
    assert copy.timeout.seconds == 9
    assert (await stub.RetryTask(retry)).task.id == copy.id  # the same key, the same copy
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.RetryTask(pb.RetryTaskRequest(task_id=str(uuid.uuid4())))
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


async def test_count_tasks_by_status(stub: TaskServiceStub, clean_db: None) -> None:
    later = schedule_request()
    later.run_at.GetCurrentTime()
    later.run_at.seconds += 3600
    waiting = [(await stub.ScheduleTask(later)).task for _ in range(2)]
    await stub.ScheduleTask(schedule_request())
    await stub.CancelTask(pb.CancelTaskRequest(task_id=waiting[0].id))
    counted = await stub.CountTasks(pb.CountTasksRequest())
    counts = {task_pb2.TaskStatus.Name(c.status): c.count for c in counted.counts}
    assert counts == {
        "TASK_STATUS_BLOCKED": 0,
        "TASK_STATUS_SCHEDULED": 1,
        "TASK_STATUS_PENDING": 1,
        "TASK_STATUS_RUNNING": 0,
        "TASK_STATUS_RETRYING": 0,
        "TASK_STATUS_SUCCESS": 0,
        "TASK_STATUS_FAILED": 0,
        "TASK_STATUS_CANCELLED": 1,
    }
    window = pb.CountTasksRequest()
    window.finished_within.seconds = 8 * 24 * 3600
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.CountTasks(window)
    assert excinfo.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def stored_rows(db: psycopg.Connection[tuple[object, ...]]) -> tuple[object, ...]:
    """How many tasks, queues and schedules exist, and every schedule's description."""
    row = db.execute(
        "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM queues), "
        "(SELECT count(*) FROM schedules), "
        "(SELECT coalesce(string_agg(description, ',' ORDER BY id), '') FROM schedules)"
    ).fetchone()
    assert row is not None
    return tuple(row)


def schedule_message(**template_payload: Any) -> schedule_pb2.Schedule:
    message = schedule_pb2.Schedule(cron="@daily", task=schedule_pb2.TaskTemplate(kind="demo.echo"))
    message.task.payload.update(template_payload)
    return message


def with_task(mutate: Any) -> pb.ScheduleTaskRequest:
    message = schedule_request()
    mutate(message)
    return message


def with_schedule(mutate: Any) -> pb.CreateScheduleRequest:
    message = pb.CreateScheduleRequest(schedule=schedule_message())
    mutate(message.schedule)
    return message


HUGE = 2**62


def _set(path: str, value: Any) -> Any:
    """A mutation setting a nested field (`timeout.seconds`) of a message."""

    def mutate(message: Any) -> None:
        *parents, name = path.split(".")
        for parent in parents:
            message = getattr(message, parent)
        setattr(message, name, value)

    return mutate


HOSTILE_CALLS = [
    ("ScheduleTask", schedule_request(x=float("nan")), "payload"),
    ("ScheduleTask", schedule_request(x=float("inf")), "payload"),
    ("ScheduleTask", schedule_request(x=[1, {"y": float("-inf")}]), "payload"),
    ("ScheduleTask", with_task(_set("timeout.seconds", HUGE)), "timeout"),
    ("ScheduleTask", with_task(_set("timeout.seconds", 400 * 86_400)), "timeout"),
    ("ScheduleTask", with_task(_set("run_at.seconds", HUGE)), "run_at"),
    ("ScheduleTask", with_task(_set("run_at.nanos", -1)), "run_at"),
    (
        "ScheduleTask",
        with_task(_set("retry_policy.initial_backoff.seconds", HUGE)),
        "retry_policy.initial_backoff",
    ),
    (
        "ScheduleTask",
        with_task(_set("retry_policy.max_backoff.seconds", HUGE)),
        "retry_policy.max_backoff",
    ),
    (
        "ScheduleTask",
        with_task(_set("retry_policy.backoff_multiplier", float("nan"))),
        "retry_policy.backoff_multiplier",
    ),
    ("ScheduleTask", with_task(_set("concurrency_key", "a\x00b")), "concurrency_key"),
    ("ScheduleTask", with_task(_set("request_id", "a\x00b")), "request_id"),
    (
        "BatchScheduleTasks",
        pb.BatchScheduleTasksRequest(requests=[schedule_request(x=float("nan"))]),
        "requests[0].payload",
    ),
    (
        "CountTasks",
        pb.CountTasksRequest(finished_within=duration_pb2.Duration(seconds=HUGE)),
        "finished_within",
    ),
    (
        "CreateSchedule",
        pb.CreateScheduleRequest(schedule=schedule_message(x=float("nan"))),
        "task.payload",
    ),
    ("CreateSchedule", with_schedule(_set("description", "a\x00b")), "description"),
    ("CreateSchedule", with_schedule(_set("time_zone", "Europe/Paris\x00")), "time_zone"),
    ("CreateSchedule", with_schedule(_set("cron", "@daily\x00")), "cron"),
    ("CreateSchedule", with_schedule(_set("catchup_window.seconds", HUGE)), "catchup_window"),
    ("CreateSchedule", with_schedule(_set("task.timeout.seconds", HUGE)), "task.timeout"),
    (
        "CreateSchedule",
        with_schedule(_set("task.retry_policy.initial_backoff.seconds", HUGE)),
        "task.retry_policy.initial_backoff",
    ),
    ("CreateSchedule", with_schedule(_set("task.concurrency_key", "\x00")), "task.concurrency_key"),
    (
        "CreateQueue",
        pb.CreateQueueRequest(
            queue=queue_pb2.Queue(name="q-huge", timeout=duration_pb2.Duration(seconds=HUGE))
        ),
        "timeout",
    ),
    (
        "CreateQueue",
        pb.CreateQueueRequest(
            queue=queue_pb2.Queue(
                name="q-backoff",
                retry_policy=task_pb2.RetryPolicy(max_backoff=duration_pb2.Duration(seconds=HUGE)),
            )
        ),
        "retry_policy.max_backoff",
    ),
    (
        "CreateQueue",
        pb.CreateQueueRequest(
            queue=queue_pb2.Queue(name="q-nan", rate_limit=queue_pb2.RateLimit(per_second=math.nan))
        ),
        "rate_limit.per_second",
    ),
]


@pytest.mark.parametrize(
    ("method", "message", "field"),
    HOSTILE_CALLS,
    ids=[f"{method}-{field}-{index}" for index, (method, _, field) in enumerate(HOSTILE_CALLS)],
)
async def test_hostile_values_are_invalid_arguments_naming_the_field_and_store_nothing(
    stub: TaskServiceStub,
    db: psycopg.Connection[tuple[object, ...]],
    method: str,
    message: Any,
    field: str,
) -> None:
    before = stored_rows(db)
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await getattr(stub, method)(message)
    assert excinfo.value.code() is grpc.StatusCode.INVALID_ARGUMENT, excinfo.value.details()
    assert error_info(excinfo.value).metadata["field"] == field
    assert stored_rows(db) == before


async def test_a_nul_in_a_schedule_update_is_invalid_argument_and_changes_nothing(
    stub: TaskServiceStub, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    created = (
        await stub.CreateSchedule(pb.CreateScheduleRequest(schedule=schedule_message()))
    ).schedule
    before = stored_rows(db)
    for path, field in (
        ("description", "description"),
        ("task.concurrency_key", "task.concurrency_key"),
    ):
        patch = schedule_pb2.Schedule(
            id=created.id, task=schedule_pb2.TaskTemplate(kind="demo.echo")
        )
        _set(path, "x\x00y")(patch)
        update = pb.UpdateScheduleRequest(
            schedule=patch, update_mask=field_mask_pb2.FieldMask(paths=[path.split(".")[0]])
        )
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            await stub.UpdateSchedule(update)
        assert excinfo.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(excinfo.value).metadata["field"] == field
    assert stored_rows(db) == before
    await stub.DeleteSchedule(pb.DeleteScheduleRequest(id=created.id))


async def test_an_unexpected_error_is_internal_and_tells_nothing_of_it(
    stub: TaskServiceStub,
    db: psycopg.Connection[tuple[object, ...]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.ScheduleTask(schedule_request("sample.buggy"))
    assert excinfo.value.code() is grpc.StatusCode.INTERNAL
    assert excinfo.value.details() == "internal error"
    assert "signing.pem" not in str(excinfo.value.trailing_metadata())
    assert "LookupError" in caplog.text and "signing.pem" in caplog.text  # the server keeps it
    assert count_tasks(db) == 0
