"""The asyncio client."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import grpc

from taskscheduler.client._common import (
    DEFAULT_ADDRESS,
    FINISHED,
    RETRYABLE,
    ClientError,
    Retries,
    TaskNotFinished,
    call_metadata,
    credentials,
    list_request,
    same_event,
    schedule_request,
)
from taskscheduler.v1 import task_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

Response = TypeVar("Response")


class AsyncClient:
    """The asyncio twin of Client: the same methods, awaited; `list` and `watch` are async
    iterators. Use it as `async with AsyncClient(...) as tasks:`."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        token: str | None = None,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        client_certificate: tuple[bytes, bytes] | None = None,
        deadline: float = 10.0,
        retries: Retries | None = None,
    ) -> None:
        secure = credentials(tls, root_certificates, client_certificate)
        self._channel = (
            grpc.aio.insecure_channel(address)
            if secure is None
            else grpc.aio.secure_channel(address, secure)
        )
        self._stub = TaskServiceStub(self._channel)
        self._metadata = call_metadata(token)
        self._deadline = deadline
        self._retries = retries or Retries()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: Callable[..., Awaitable[Response]], request: Any) -> Response:
        for delay in self._retries.delays():
            try:
                return await method(request, timeout=self._deadline, metadata=self._metadata)
            except grpc.aio.AioRpcError as error:
                if error.code() not in RETRYABLE or delay is None:
                    raise ClientError.of(error) from None
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last delay is None")

    async def schedule(
        self,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        run_at: datetime | None = None,
        timeout: timedelta | None = None,  # noqa: ASYNC109 (the attempt's, not the call's)
        max_attempts: int | None = None,
        request_id: str | None = None,
    ) -> task_pb2.Task:
        """Schedules a task. Without a `request_id` one is made up, so that a retried call
        never schedules the task twice."""
        request = schedule_request(
            kind,
            payload,
            run_at=run_at,
            timeout=timeout,
            max_attempts=max_attempts,
            request_id=request_id or str(uuid.uuid4()),
        )
        response: pb.ScheduleTaskResponse = await self._call(self._stub.ScheduleTask, request)
        return response.task

    async def get(self, task_id: str) -> task_pb2.Task:
        response: pb.GetTaskResponse = await self._call(
            self._stub.GetTask, pb.GetTaskRequest(task_id=task_id)
        )
        return response.task

    async def retry(self, task_id: str, request_id: str | None = None) -> task_pb2.Task:
        """Schedules a copy of a finished task to run now (same kind, payload and policy)."""
        request = pb.RetryTaskRequest(task_id=task_id, request_id=request_id or str(uuid.uuid4()))
        response: pb.RetryTaskResponse = await self._call(self._stub.RetryTask, request)
        return response.task

    async def cancel(self, task_id: str) -> task_pb2.Task:
        """Cancels a waiting task, or asks a running one to stop. A task that is already
        CANCELLED is returned as it is: a cancel retried after UNAVAILABLE may find its own
        earlier try committed. Any other finished task raises ClientError FAILED_PRECONDITION."""
        try:
            response: pb.CancelTaskResponse = await self._call(
                self._stub.CancelTask, pb.CancelTaskRequest(task_id=task_id)
            )
        except ClientError as error:
            if error.reason != "TASK_ALREADY_FINISHED":
                raise
            task = await self.get(task_id)
            if task.status != task_pb2.TASK_STATUS_CANCELLED:
                raise
            return task
        return response.task

    async def list(
        self, *, kind: str = "", statuses: Iterable[int] = (), page_size: int = 100
    ) -> AsyncIterator[task_pb2.Task]:
        """Every task that matches, newest first, fetching page after page."""
        token = ""
        while True:
            request = list_request(kind, statuses, page_size, token)
            response: pb.ListTasksResponse = await self._call(self._stub.ListTasks, request)
            for task in response.tasks:
                yield task
            token = response.next_page_token
            if not token:
                return

    async def watch(
        self,
        task_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 (the stream's gRPC deadline)
    ) -> AsyncIterator[pb.StreamStatusResponse]:
        """The task's current state, then each change, until a terminal status, within
        `timeout` seconds in all. A stream cut by UNAVAILABLE is opened again: it starts with the
        current state (changes made while it was cut are not replayed) and never repeats the
        event seen last."""
        last: pb.StreamStatusResponse | None = None
        ends = None if timeout is None else time.monotonic() + timeout
        delays = self._retries.delays()
        while True:
            remaining = None if ends is None else max(0.0, ends - time.monotonic())
            stream = self._stub.StreamStatus(
                pb.StreamStatusRequest(task_id=task_id), timeout=remaining, metadata=self._metadata
            )
            try:
                async for event in stream:
                    if not same_event(last, event):
                        yield event
                    last = event
                    delays = self._retries.delays()  # it got through: a fresh budget of tries
                return
            except grpc.aio.AioRpcError as error:
                delay = next(delays)
                if error.code() not in RETRYABLE or delay is None:
                    raise ClientError.of(error) from None
                await asyncio.sleep(delay)

    async def wait(
        self,
        task_id: str,
        timeout: float = 60.0,  # noqa: ASYNC109 (the stream's gRPC deadline)
    ) -> task_pb2.Task:
        """Returns the task once finished (SUCCESS, FAILED or CANCELLED); raises
        TaskNotFinished after `timeout` seconds."""
        seen: task_pb2.Task | None = None
        try:
            async for event in self.watch(task_id, timeout=timeout):
                seen = event.task
                if event.status in FINISHED:
                    return event.task
        except ClientError as error:
            if error.code is not grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        raise TaskNotFinished(seen or await self.get(task_id))
