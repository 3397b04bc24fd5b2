"""The gRPC TaskService: authenticates and rate-limits each call, converts messages at the edge
and calls the core's managers (tasks, queues, schedules, workflows, workers)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError

from services.api import convert
from services.api.auth import TokenVerifier
from services.api.errors import abort_internal, abort_with
from taskscheduler.core.bulk import BulkActions
from taskscheduler.core.errors import DomainError, InvalidArgument
from taskscheduler.core.explain import TaskExplainer
from taskscheduler.core.insights import Insights
from taskscheduler.core.model import Caller
from taskscheduler.core.queues import QueueManager
from taskscheduler.core.schedules import ScheduleManager
from taskscheduler.core.tasks import TaskManager
from taskscheduler.core.workers import WorkerManager
from taskscheduler.core.workflows import WorkflowManager
from taskscheduler.v1 import task_service_pb2, task_service_pb2_grpc
from taskscheduler.v1 import task_service_pb2 as pb

T = TypeVar("T")

log = logging.getLogger("taskscheduler.api")


UNPARSABLE = object()
"""What the lenient deserializer hands over for a request protobuf could not parse."""


def _parsed(request: object) -> None:
    if request is UNPARSABLE:
        raise InvalidArgument(
            "request", "could not be parsed (malformed, or nested more deeply than allowed)"
        )


def lenient(parse: Callable[[bytes], T]) -> Callable[[bytes], T | object]:
    """A request deserializer that lets the servicer answer INVALID_ARGUMENT for bytes that do
    not parse (gRPC would answer UNKNOWN)."""

    def deserialize(data: bytes) -> T | object:
        try:
            return parse(data)
        except DecodeError:
            return UNPARSABLE

    return deserialize


def add_task_service(servicer: TaskServicer, server: grpc.aio.Server) -> None:
    """Registers the servicer as the generated code does, with lenient deserializers."""
    service = task_service_pb2.DESCRIPTOR.services_by_name["TaskService"]
    handlers = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        make_handler = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make_handler(
            getattr(servicer, method.name),
            request_deserializer=lenient(request_class.FromString),
            response_serializer=response_class.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)


class RateLimiter(Protocol):
    async def acquire(self, tenant: str) -> None: ...


class TaskServicer(task_service_pb2_grpc.TaskServiceServicer):
    def __init__(
        self,
        manager: TaskManager,
        queues: QueueManager,
        schedules: ScheduleManager,
        workflows: WorkflowManager,
        workers: WorkerManager,
        explainer: TaskExplainer,
        bulk: BulkActions,
        insights: Insights,
        verifier: TokenVerifier,
        limiter: RateLimiter | None,
    ) -> None:
        self._manager = manager
        self._queues = queues
        self._schedules = schedules
        self._workflows = workflows
        self._workers = workers
        self._explainer = explainer
        self._bulk = bulk
        self._insights = insights
        self._verifier = verifier
        self._limiter = limiter

    async def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        """Who calls (a verified token), once they are within their tenant's rate limit."""
        caller = self._verifier.caller(context.invocation_metadata() or ())
        if self._limiter is not None:
            await self._limiter.acquire(caller.tenant)
        return caller

    async def _authorized(self, context: grpc.aio.ServicerContext, request: object) -> Caller:
        """The caller, authenticated and rate-limited before anything of the request is looked
        at: without a valid token the answer is UNAUTHENTICATED whatever the bytes were."""
        caller = await self._caller(context)
        _parsed(request)
        return caller

    async def _call(
        self,
        context: grpc.aio.ServicerContext,
        request: object,
        operation: Callable[[Caller], Awaitable[T]],
    ) -> T:
        """Runs a use case; a domain error becomes its status code, any other error INTERNAL
        with nothing of its text (the call never returns)."""
        try:
            return await operation(await self._authorized(context, request))
        except DomainError as error:
            await abort_with(context, error)
            raise AssertionError("abort_with returned") from error
        except Exception as error:
            # The trace stays in the server's log; the caller learns nothing of the internals.
            log.exception("%s failed", operation.__qualname__.split(".<locals>")[0])
            await abort_internal(context)
            raise AssertionError("abort_internal returned") from error

    async def ScheduleTask(
        self, request: pb.ScheduleTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.ScheduleTaskResponse:
        async def schedule(caller: Caller) -> pb.ScheduleTaskResponse:
            task = await self._manager.schedule(
                caller, convert.schedule_request_from_proto(request)
            )
            return pb.ScheduleTaskResponse(task=convert.task_to_proto(task))

        return await self._call(context, request, schedule)

    async def GetTask(
        self, request: pb.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTaskResponse:
        async def get(caller: Caller) -> pb.GetTaskResponse:
            task = await self._manager.get(caller, request.task_id)
            return pb.GetTaskResponse(task=convert.task_to_proto(task))

        return await self._call(context, request, get)

    async def ListTasks(
        self, request: pb.ListTasksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTasksResponse:
        async def list_tasks(caller: Caller) -> pb.ListTasksResponse:
            result = await self._manager.list(caller, convert.list_request_from_proto(request))
            return pb.ListTasksResponse(
                tasks=[convert.task_to_proto(task) for task in result.tasks],
                next_page_token=result.next_page_token,
            )

        return await self._call(context, request, list_tasks)

    async def CancelTask(
        self, request: pb.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelTaskResponse:
        async def cancel(caller: Caller) -> pb.CancelTaskResponse:
            task = await self._manager.cancel(caller, request.task_id)
            return pb.CancelTaskResponse(task=convert.task_to_proto(task))

        return await self._call(context, request, cancel)

    async def RetryTask(
        self, request: pb.RetryTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryTaskResponse:
        async def retry(caller: Caller) -> pb.RetryTaskResponse:
            task = await self._manager.retry(caller, request.task_id, request.request_id)
            return pb.RetryTaskResponse(task=convert.task_to_proto(task))

        return await self._call(context, request, retry)

    async def CountTasks(
        self, request: pb.CountTasksRequest, context: grpc.aio.ServicerContext
    ) -> pb.CountTasksResponse:
        async def count(caller: Caller) -> pb.CountTasksResponse:
            counts = await self._manager.count(caller, convert.count_window_from_proto(request))
            return pb.CountTasksResponse(
                counts=[
                    pb.StatusCount(status=convert.status_to_proto(status), count=number)
                    for status, number in counts.items()
                ]
            )

        return await self._call(context, request, count)

    async def BatchScheduleTasks(
        self, request: pb.BatchScheduleTasksRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchScheduleTasksResponse:
        async def schedule_all(caller: Caller) -> pb.BatchScheduleTasksResponse:
            items = []
            for index, item in enumerate(request.requests):
                try:
                    items.append(convert.schedule_request_from_proto(item))
                except InvalidArgument as error:
                    raise error.within(f"requests[{index}]") from None
            tasks = await self._manager.schedule_batch(caller, items)
            return pb.BatchScheduleTasksResponse(tasks=[convert.task_to_proto(t) for t in tasks])

        return await self._call(context, request, schedule_all)

    async def StreamStatus(
        self, request: pb.StreamStatusRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamStatusResponse]:
        try:
            caller = await self._authorized(context, request)
            async for change in self._manager.watch(caller, request.task_id):
                yield convert.change_to_proto(change)
        except DomainError as error:
            await abort_with(context, error)
        except Exception:
            log.exception("TaskServicer.StreamStatus failed")
            await abort_internal(context)

    async def CreateQueue(
        self, request: pb.CreateQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateQueueResponse:
        async def create(caller: Caller) -> pb.CreateQueueResponse:
            settings = convert.queue_settings_from_proto(request.queue)
            queue = await self._queues.create(caller, request.queue.name, settings)
            return pb.CreateQueueResponse(queue=convert.queue_to_proto(queue))

        return await self._call(context, request, create)

    async def GetQueue(
        self, request: pb.GetQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetQueueResponse:
        async def get(caller: Caller) -> pb.GetQueueResponse:
            queue = await self._queues.get(caller, request.name)
            return pb.GetQueueResponse(queue=convert.queue_to_proto(queue))

        return await self._call(context, request, get)

    async def ListQueues(
        self, request: pb.ListQueuesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListQueuesResponse:
        async def list_queues(caller: Caller) -> pb.ListQueuesResponse:
            page = await self._queues.list(caller, request.page_size, request.page_token)
            return pb.ListQueuesResponse(
                queues=[convert.queue_to_proto(queue) for queue in page.queues],
                next_page_token=page.next_page_token,
            )

        return await self._call(context, request, list_queues)

    async def UpdateQueue(
        self, request: pb.UpdateQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateQueueResponse:
        async def update(caller: Caller) -> pb.UpdateQueueResponse:
            settings = convert.queue_settings_from_proto(request.queue)
            fields = frozenset(request.update_mask.paths)
            queue = await self._queues.update(caller, request.queue.name, settings, fields)
            return pb.UpdateQueueResponse(queue=convert.queue_to_proto(queue))

        return await self._call(context, request, update)

    async def DeleteQueue(
        self, request: pb.DeleteQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteQueueResponse:
        async def delete(caller: Caller) -> pb.DeleteQueueResponse:
            await self._queues.delete(caller, request.name)
            return pb.DeleteQueueResponse()

        return await self._call(context, request, delete)

    async def PauseQueue(
        self, request: pb.PauseQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.PauseQueueResponse:
        async def pause(caller: Caller) -> pb.PauseQueueResponse:
            queue = await self._queues.pause(caller, request.name)
            return pb.PauseQueueResponse(queue=convert.queue_to_proto(queue))

        return await self._call(context, request, pause)

    async def ResumeQueue(
        self, request: pb.ResumeQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResumeQueueResponse:
        async def resume(caller: Caller) -> pb.ResumeQueueResponse:
            queue = await self._queues.resume(caller, request.name)
            return pb.ResumeQueueResponse(queue=convert.queue_to_proto(queue))

        return await self._call(context, request, resume)

    async def PurgeQueue(
        self, request: pb.PurgeQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.PurgeQueueResponse:
        async def purge(caller: Caller) -> pb.PurgeQueueResponse:
            queue, cancelled = await self._queues.purge(caller, request.name)
            return pb.PurgeQueueResponse(
                queue=convert.queue_to_proto(queue), cancelled_count=cancelled
            )

        return await self._call(context, request, purge)

    async def CreateSchedule(
        self, request: pb.CreateScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateScheduleResponse:
        async def create(caller: Caller) -> pb.CreateScheduleResponse:
            spec = convert.schedule_spec_from_proto(request.schedule)
            schedule = await self._schedules.create(caller, spec, request.schedule.paused)
            return pb.CreateScheduleResponse(schedule=convert.schedule_to_proto(schedule))

        return await self._call(context, request, create)

    async def GetSchedule(
        self, request: pb.GetScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetScheduleResponse:
        async def get(caller: Caller) -> pb.GetScheduleResponse:
            schedule = await self._schedules.get(caller, request.id)
            return pb.GetScheduleResponse(schedule=convert.schedule_to_proto(schedule))

        return await self._call(context, request, get)

    async def ListSchedules(
        self, request: pb.ListSchedulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSchedulesResponse:
        async def list_schedules(caller: Caller) -> pb.ListSchedulesResponse:
            found, token = await self._schedules.list(caller, request.page_size, request.page_token)
            return pb.ListSchedulesResponse(
                schedules=[convert.schedule_to_proto(schedule) for schedule in found],
                next_page_token=token,
            )

        return await self._call(context, request, list_schedules)

    async def UpdateSchedule(
        self, request: pb.UpdateScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateScheduleResponse:
        async def update(caller: Caller) -> pb.UpdateScheduleResponse:
            spec = convert.schedule_spec_from_proto(request.schedule)
            fields = frozenset(request.update_mask.paths)
            schedule = await self._schedules.update(caller, request.schedule.id, spec, fields)
            return pb.UpdateScheduleResponse(schedule=convert.schedule_to_proto(schedule))

        return await self._call(context, request, update)

    async def DeleteSchedule(
        self, request: pb.DeleteScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteScheduleResponse:
        async def delete(caller: Caller) -> pb.DeleteScheduleResponse:
            await self._schedules.delete(caller, request.id)
            return pb.DeleteScheduleResponse()

        return await self._call(context, request, delete)

    async def PauseSchedule(
        self, request: pb.PauseScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.PauseScheduleResponse:
        async def pause(caller: Caller) -> pb.PauseScheduleResponse:
            schedule = await self._schedules.pause(caller, request.id)
            return pb.PauseScheduleResponse(schedule=convert.schedule_to_proto(schedule))

        return await self._call(context, request, pause)

    async def ResumeSchedule(
        self, request: pb.ResumeScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResumeScheduleResponse:
        async def resume(caller: Caller) -> pb.ResumeScheduleResponse:
            schedule = await self._schedules.resume(caller, request.id)
            return pb.ResumeScheduleResponse(schedule=convert.schedule_to_proto(schedule))

        return await self._call(context, request, resume)

    async def TriggerSchedule(
        self, request: pb.TriggerScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.TriggerScheduleResponse:
        async def trigger(caller: Caller) -> pb.TriggerScheduleResponse:
            task = await self._schedules.trigger(caller, request.id)
            return pb.TriggerScheduleResponse(task=convert.task_to_proto(task))

        return await self._call(context, request, trigger)

    async def CreateWorkflow(
        self, request: pb.CreateWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateWorkflowResponse:
        async def create(caller: Caller) -> pb.CreateWorkflowResponse:
            workflow_request = convert.workflow_request_from_proto(request)
            workflow = await self._workflows.create(caller, workflow_request)
            return pb.CreateWorkflowResponse(workflow=convert.workflow_to_proto(workflow))

        return await self._call(context, request, create)

    async def GetWorkflow(
        self, request: pb.GetWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWorkflowResponse:
        async def get(caller: Caller) -> pb.GetWorkflowResponse:
            workflow = await self._workflows.get(caller, request.workflow_id)
            return pb.GetWorkflowResponse(workflow=convert.workflow_to_proto(workflow))

        return await self._call(context, request, get)

    async def ListWorkflows(
        self, request: pb.ListWorkflowsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWorkflowsResponse:
        async def list_workflows(caller: Caller) -> pb.ListWorkflowsResponse:
            page = await self._workflows.list(
                caller, convert.workflow_list_request_from_proto(request)
            )
            return pb.ListWorkflowsResponse(
                workflows=[convert.workflow_to_proto(workflow) for workflow in page.workflows],
                next_page_token=page.next_page_token,
            )

        return await self._call(context, request, list_workflows)

    async def CancelWorkflow(
        self, request: pb.CancelWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelWorkflowResponse:
        async def cancel(caller: Caller) -> pb.CancelWorkflowResponse:
            workflow = await self._workflows.cancel(caller, request.workflow_id)
            return pb.CancelWorkflowResponse(workflow=convert.workflow_to_proto(workflow))

        return await self._call(context, request, cancel)

    async def StreamWorkflow(
        self, request: pb.StreamWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamWorkflowResponse]:
        try:
            caller = await self._authorized(context, request)
            async for event in self._workflows.watch(caller, request.workflow_id):
                yield convert.workflow_event_to_proto(event)
        except DomainError as error:
            await abort_with(context, error)
        except Exception:
            log.exception("TaskServicer.StreamWorkflow failed")
            await abort_internal(context)

    async def ListWorkers(
        self, request: pb.ListWorkersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWorkersResponse:
        async def list_workers(caller: Caller) -> pb.ListWorkersResponse:
            workers = await self._workers.list(caller, convert.worker_states_from_proto(request))
            return pb.ListWorkersResponse(
                workers=[convert.worker_to_proto(worker) for worker in workers]
            )

        return await self._call(context, request, list_workers)

    async def ExplainTask(
        self, request: pb.ExplainTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExplainTaskResponse:
        async def explain(caller: Caller) -> pb.ExplainTaskResponse:
            explanation = await self._explainer.explain(caller, request.task_id)
            return convert.explanation_to_proto(explanation)

        return await self._call(context, request, explain)

    async def BatchCancelTasks(
        self, request: pb.BatchCancelTasksRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchCancelTasksResponse:
        async def cancel_all(caller: Caller) -> pb.BatchCancelTasksResponse:
            result = await self._bulk.cancel(caller, convert.selection_from_proto(request))
            return convert.cancelled_to_proto(result)

        return await self._call(context, request, cancel_all)

    async def BatchRetryTasks(
        self, request: pb.BatchRetryTasksRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchRetryTasksResponse:
        async def retry_all(caller: Caller) -> pb.BatchRetryTasksResponse:
            result = await self._bulk.retry(caller, convert.selection_from_proto(request))
            return convert.retried_to_proto(result)

        return await self._call(context, request, retry_all)

    async def ListFailureGroups(
        self, request: pb.ListFailureGroupsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFailureGroupsResponse:
        async def group(caller: Caller) -> pb.ListFailureGroupsResponse:
            groups = await self._insights.failure_groups(caller, request.kind, request.queue)
            return convert.failure_groups_to_proto(groups)

        return await self._call(context, request, group)

    async def GetActivity(
        self, request: pb.GetActivityRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetActivityResponse:
        async def activity(caller: Caller) -> pb.GetActivityResponse:
            return convert.activity_to_proto(await self._insights.activity(caller, request.queue))

        return await self._call(context, request, activity)
