"""The gRPC TaskService: authenticates and rate-limits each call, converts messages at the edge
and calls the core's TaskManager."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

import grpc

from services.api import convert
from services.api.auth import TokenVerifier
from services.api.errors import abort_with
from taskscheduler.core.errors import DomainError
from taskscheduler.core.manager import TaskManager
from taskscheduler.core.model import Caller
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1 import task_service_pb2_grpc

T = TypeVar("T")


class RateLimiter(Protocol):
    async def acquire(self, tenant: str) -> None: ...


class TaskServicer(task_service_pb2_grpc.TaskServiceServicer):
    def __init__(
        self, manager: TaskManager, verifier: TokenVerifier, limiter: RateLimiter | None
    ) -> None:
        self._manager = manager
        self._verifier = verifier
        self._limiter = limiter

    async def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        """Who calls (a verified token), once they are within their tenant's rate limit."""
        caller = self._verifier.caller(context.invocation_metadata() or ())
        if self._limiter is not None:
            await self._limiter.acquire(caller.tenant)
        return caller

    async def _call(
        self,
        context: grpc.aio.ServicerContext,
        operation: Callable[[Caller], Awaitable[T]],
    ) -> T:
        """Runs a use case; a domain error becomes its status code (the call never returns)."""
        try:
            return await operation(await self._caller(context))
        except DomainError as error:
            await abort_with(context, error)
            raise AssertionError("abort_with returned") from error

    async def ScheduleTask(
        self, request: pb.ScheduleTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.ScheduleTaskResponse:
        async def schedule(caller: Caller) -> pb.ScheduleTaskResponse:
            task = await self._manager.schedule(
                caller, convert.schedule_request_from_proto(request)
            )
            return pb.ScheduleTaskResponse(task=convert.task_to_proto(task))

        return await self._call(context, schedule)

    async def GetTask(
        self, request: pb.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTaskResponse:
        async def get(caller: Caller) -> pb.GetTaskResponse:
            task = await self._manager.get(caller, request.task_id)
            return pb.GetTaskResponse(task=convert.task_to_proto(task))

        return await self._call(context, get)

    async def ListTasks(
        self, request: pb.ListTasksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTasksResponse:
        async def list_tasks(caller: Caller) -> pb.ListTasksResponse:
            result = await self._manager.list(caller, convert.list_request_from_proto(request))
            return pb.ListTasksResponse(
                tasks=[convert.task_to_proto(task) for task in result.tasks],
                next_page_token=result.next_page_token,
            )

        return await self._call(context, list_tasks)

    async def CancelTask(
        self, request: pb.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelTaskResponse:
        async def cancel(caller: Caller) -> pb.CancelTaskResponse:
            task = await self._manager.cancel(caller, request.task_id)
            return pb.CancelTaskResponse(task=convert.task_to_proto(task))

        return await self._call(context, cancel)

    async def StreamStatus(
        self, request: pb.StreamStatusRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamStatusResponse]:
        try:
            caller = await self._caller(context)
            async for event, task in self._manager.watch(caller, request.task_id):
                yield convert.event_to_proto(event, task)
        except DomainError as error:
            await abort_with(context, error)
