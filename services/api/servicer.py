"""The gRPC TaskService: converts messages at the edge and calls the core's TaskManager."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc

from services.api import convert
from services.api.errors import abort_with
from taskscheduler.core.errors import DomainError
from taskscheduler.core.manager import TaskManager
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1 import task_service_pb2_grpc

T = TypeVar("T")


async def _call(context: grpc.aio.ServicerContext, operation: Callable[[], Awaitable[T]]) -> T:
    """Runs a use case; a domain error becomes its status code (the call never returns then)."""
    try:
        return await operation()
    except DomainError as error:
        await abort_with(context, error)
        raise AssertionError("abort_with returned") from error


class TaskServicer(task_service_pb2_grpc.TaskServiceServicer):
    def __init__(self, manager: TaskManager) -> None:
        self._manager = manager

    async def ScheduleTask(
        self, request: pb.ScheduleTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.ScheduleTaskResponse:
        async def schedule() -> pb.ScheduleTaskResponse:
            task = await self._manager.schedule(convert.schedule_request_from_proto(request))
            return pb.ScheduleTaskResponse(task=convert.task_to_proto(task))

        return await _call(context, schedule)

    async def GetTask(
        self, request: pb.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTaskResponse:
        async def get() -> pb.GetTaskResponse:
            task = await self._manager.get(request.task_id)
            return pb.GetTaskResponse(task=convert.task_to_proto(task))

        return await _call(context, get)

    async def ListTasks(
        self, request: pb.ListTasksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTasksResponse:
        async def list_tasks() -> pb.ListTasksResponse:
            result = await self._manager.list(convert.list_request_from_proto(request))
            return pb.ListTasksResponse(
                tasks=[convert.task_to_proto(task) for task in result.tasks],
                next_page_token=result.next_page_token,
            )

        return await _call(context, list_tasks)

    async def CancelTask(
        self, request: pb.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelTaskResponse:
        async def cancel() -> pb.CancelTaskResponse:
            task = await self._manager.cancel(request.task_id)
            return pb.CancelTaskResponse(task=convert.task_to_proto(task))

        return await _call(context, cancel)

    async def StreamStatus(
        self, request: pb.StreamStatusRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamStatusResponse]:
        try:
            async for event, task in self._manager.watch(request.task_id):
                yield convert.event_to_proto(event, task)
        except DomainError as error:
            await abort_with(context, error)
