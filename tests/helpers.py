"""Small helpers for tests that drive the gRPC api."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import grpc
import httpx

from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub


def request(
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    max_attempts: int = 0,
    initial_backoff: timedelta | None = None,
    multiplier: float = 0,
    jitter: bool | None = None,
    timeout: timedelta | None = None,
    run_in: timedelta | None = None,
) -> pb.ScheduleTaskRequest:
    message = pb.ScheduleTaskRequest(kind=kind)
    message.payload.update(payload or {})
    policy = message.retry_policy
    policy.max_attempts = max_attempts
    policy.backoff_multiplier = multiplier
    if initial_backoff is not None:
        policy.initial_backoff.FromTimedelta(initial_backoff)
    if jitter is not None:
        policy.jitter = jitter
    if timeout is not None:
        message.timeout.FromTimedelta(timeout)
    if run_in is not None:
        message.run_at.GetCurrentTime()
        message.run_at.FromNanoseconds(
            message.run_at.ToNanoseconds() + int(run_in.total_seconds() * 1e9)
        )
    return message


async def schedule(stub: TaskServiceStub, message: pb.ScheduleTaskRequest) -> task_pb2.Task:
    response: pb.ScheduleTaskResponse = await stub.ScheduleTask(message)
    return response.task


async def get(stub: TaskServiceStub, task_id: str) -> task_pb2.Task:
    response: pb.GetTaskResponse = await stub.GetTask(pb.GetTaskRequest(task_id=task_id))
    return response.task


async def follow(
    stub: TaskServiceStub, task_id: str, progress: bool = False
) -> list[pb.StreamStatusResponse]:
    """Every StreamStatus event until the stream ends (after a terminal status); the progress
    reports too only when asked."""
    events = []
    async for event in stub.StreamStatus(pb.StreamStatusRequest(task_id=task_id), timeout=60):
        if progress or event.kind != pb.TASK_EVENT_KIND_PROGRESS:
            events.append(event)
    return events


async def wait_for_status(
    stub: TaskServiceStub,
    task_id: str,
    status: task_pb2.TaskStatus.ValueType,
    attempt: int | None = None,
) -> task_pb2.Task:
    """The task as it stands when it first reaches `status` (in `attempt`, when given)."""
    async for event in stub.StreamStatus(pb.StreamStatusRequest(task_id=task_id), timeout=60):
        if event.kind == pb.TASK_EVENT_KIND_PROGRESS:
            continue  # a report of the running handler: no task, no status change
        if event.status == status and attempt in (None, event.attempt):
            task: task_pb2.Task = event.task
            return task
    raise AssertionError(f"{task_id} ended without reaching {task_pb2.TaskStatus.Name(status)}")


T = TypeVar("T")


async def eventually(read: Callable[[], Awaitable[T | None]], within: float = 20) -> T:
    """`read`'s first truthy answer, asked every 0.1 s; an AssertionError after `within` s."""
    deadline = asyncio.get_running_loop().time() + within
    while not (answer := await read()):
        assert asyncio.get_running_loop().time() < deadline, f"still {answer!r} after {within} s"
        await asyncio.sleep(0.1)
    return answer


def rest_wait_for_status(
    client: httpx.Client, task_id: str, wanted: str, within: float = 30
) -> dict[str, Any]:
    """The task (GET /v1/tasks/{id}) once it is in `wanted`, asked every 0.05 s."""
    deadline = time.monotonic() + within
    while (task := client.get(f"/v1/tasks/{task_id}").json())["status"] != wanted:
        assert time.monotonic() < deadline, f"{task_id} stuck at {task['status']}"
        time.sleep(0.05)
    found: dict[str, Any] = task
    return found


async def wait_until(condition: Callable[[], bool], within: float = 20) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polls state outside asyncio (logs, files)
            await asyncio.sleep(0.05)


def _with_token(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()), ("authorization", f"Bearer {token}"))
    return details._replace(metadata=metadata)


class UnaryToken(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds `authorization: Bearer <token>` to every unary call of a channel."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._token), request)


class StreamToken(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """The same for server-streaming calls (grpc.aio files each interceptor under one kind)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._token), request)


def channel(address: str, token: str | None) -> grpc.aio.Channel:
    interceptors = [UnaryToken(token), StreamToken(token)] if token else None
    return grpc.aio.insecure_channel(address, interceptors=interceptors)


@dataclass(frozen=True)
class Ids:
    """The resources a call names: a task, a queue, a schedule, a workflow (tenant and scope
    tables)."""

    task: str
    queue: str
    schedule: str
    workflow: str

    @classmethod
    def unknown(cls) -> Ids:
        return cls(
            str(uuid.uuid4()), f"q-{uuid.uuid4().hex[:8]}", str(uuid.uuid4()), str(uuid.uuid4())
        )

    def hidden(self, text: str) -> str:
        """`text` with these ids replaced by placeholders (an answer about one id or another)."""
        for value, name in (
            (self.task, "<task>"),
            (self.queue, "<queue>"),
            (self.schedule, "<schedule>"),
            (self.workflow, "<workflow>"),
        ):
            text = text.replace(value, name)
        return text

    def path(self, template: str) -> str:
        """A REST route's path template with these ids in it."""
        return (
            template.replace("{task_id}", self.task)
            .replace("{name}", self.queue)
            .replace("{schedule_id}", self.schedule)
            .replace("{workflow_id}", self.workflow)
        )
