"""The asyncio client."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar, Unpack

import grpc

from taskscheduler.client._canvas import Canvas, WorkflowPlan, workflow_request
from taskscheduler.client._common import (
    BULK_DEADLINE_SECONDS,
    CHANNEL_OPTIONS,
    DEFAULT_ADDRESS,
    FINISHED,
    RETRYABLE,
    WORKFLOW_FINISHED,
    ClientError,
    Purged,
    QueueChanges,
    Retries,
    RetryOptions,
    ScheduleChanges,
    Selector,
    TaskNotFinished,
    WorkflowNotFinished,
    bulk_request,
    call_metadata,
    changed_template,
    credentials,
    is_progress,
    list_request,
    queue_message,
    same_event,
    schedule_message,
    task_request,
    task_template,
    touches_template,
    update_queue_request,
    update_schedule_request,
)
from taskscheduler.v1 import queue_pb2, schedule_pb2, task_pb2, worker_pb2, workflow_pb2
from taskscheduler.v1 import task_service_pb2 as pb
from taskscheduler.v1.task_service_pb2_grpc import TaskServiceStub

Response = TypeVar("Response")


class AsyncClient:
    """The asyncio twin of Client: the same methods, awaited; `list` and `watch` are
    async iterators. Use it as `async with AsyncClient(...) as tasks:`."""

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
            grpc.aio.insecure_channel(address, CHANNEL_OPTIONS)
            if secure is None
            else grpc.aio.secure_channel(address, secure, CHANNEL_OPTIONS)
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

    async def _call(
        self,
        method: Callable[..., Awaitable[Response]],
        request: Any,
        *,
        retry: bool = True,
        deadline: float | None = None,
    ) -> Response:
        """One call; UNAVAILABLE tried again under the retries, unless `retry` is false (a call
        that a second try could repeat: it has no idempotency key). `deadline`: seconds, when
        not the client's."""
        for delay in self._retries.delays():
            try:
                return await method(
                    request, timeout=deadline or self._deadline, metadata=self._metadata
                )
            except grpc.aio.AioRpcError as error:
                if error.code() not in RETRYABLE or delay is None or not retry:
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
        request_id: str | None = None,
        queue: str = "",
        priority: int | None = None,
        concurrency_key: str = "",
        depends_on: Iterable[str] = (),
        **retry: Unpack[RetryOptions],
    ) -> task_pb2.Task:
        """Schedules a task, into `queue` ("default" when empty), with a `priority` from 0 to 9
        (higher first; None means 5) and a `concurrency_key` for the queue's
        max_concurrent_per_key. With `depends_on` (task ids), it waits BLOCKED until they have
        succeeded. Without a `request_id` one is made up, so that a retried call never
        schedules the task twice. The retry policy comes field by field (`max_attempts`,
        `initial_backoff`, `max_backoff`, `backoff_multiplier`, `jitter`: RetryOptions); a
        field not given takes the queue's, the kind's, then the service's default."""
        request = task_request(
            kind,
            payload,
            run_at=run_at,
            timeout=timeout,
            request_id=request_id,
            queue=queue,
            priority=priority,
            concurrency_key=concurrency_key,
            depends_on=depends_on,
            **retry,
        )
        response: pb.ScheduleTaskResponse = await self._call(self._stub.ScheduleTask, request)
        return response.task

    async def schedule_many(
        self, requests: Iterable[pb.ScheduleTaskRequest]
    ) -> Sequence[task_pb2.Task]:
        """Schedules up to 1,000 tasks in one call, all or none: each made by task_request(),
        which takes what schedule() takes. The tasks come back in the order of the requests."""
        batch = pb.BatchScheduleTasksRequest(requests=requests)
        response: pb.BatchScheduleTasksResponse = await self._call(
            self._stub.BatchScheduleTasks, batch
        )
        return list(response.tasks)

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
        self,
        *,
        kind: str = "",
        statuses: Iterable[int] = (),
        queue: str = "",
        schedule_id: str = "",
        workflow_id: str = "",
        task_id_prefix: str = "",
        error_type: str = "",
        payload_contains: Mapping[str, Any] | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[task_pb2.Task]:
        """Every task that matches (of a kind, in statuses, of a queue, made by a schedule, a
        step of a workflow, whose id starts with task_id_prefix, whose last attempt ended with
        error_type, whose payload contains payload_contains; empty means any), newest first,
        fetching page after page."""
        token = ""
        while True:
            request = list_request(
                kind,
                statuses,
                page_size,
                token,
                queue,
                schedule_id,
                workflow_id,
                task_id_prefix,
                error_type,
                payload_contains,
            )
            response: pb.ListTasksResponse = await self._call(self._stub.ListTasks, request)
            for task in response.tasks:
                yield task
            token = response.next_page_token
            if not token:
                return

    async def cancel_many(
        self,
        task_ids: Iterable[str] = (),
        *,
        dry_run: bool = False,
        deadline: float = BULK_DEADLINE_SECONDS,
        **selector: Unpack[Selector],
    ) -> pb.BatchCancelTasksResponse:
        """Cancels up to 1,000 tasks by id, or, without ids, every task the selector's fields
        match (statuses, kind, queue, schedule_id, workflow_id, created_after/before,
        finished_after/before, error_type, payload_contains, task_id_prefix; none: every
        task), each as cancel does. The answer counts
        what was done and names what was not (`not_acted`, with the reason); with `dry_run`,
        only how many match (`matched_count`)."""
        request = bulk_request(pb.BatchCancelTasksRequest(dry_run=dry_run), task_ids, selector)
        response: pb.BatchCancelTasksResponse = await self._call(
            self._stub.BatchCancelTasks, request, deadline=deadline
        )
        return response

    async def retry_many(
        self,
        task_ids: Iterable[str] = (),
        *,
        dry_run: bool = False,
        deadline: float = BULK_DEADLINE_SECONDS,
        **selector: Unpack[Selector],
    ) -> pb.BatchRetryTasksResponse:
        """Retries up to 1,000 finished tasks by id, or every task the selector matches, each
        as retry does; safe to repeat (a task retried already keeps its one copy)."""
        request = bulk_request(pb.BatchRetryTasksRequest(dry_run=dry_run), task_ids, selector)
        response: pb.BatchRetryTasksResponse = await self._call(
            self._stub.BatchRetryTasks, request, deadline=deadline
        )
        return response

    async def explain(self, task_id: str) -> pb.ExplainTaskResponse:
        """Why the task has not started: its `reasons` (code, message, until), the first one
        first; for a RUNNING task, its `worker` and `lease_expire_time`."""
        response: pb.ExplainTaskResponse = await self._call(
            self._stub.ExplainTask, pb.ExplainTaskRequest(task_id=task_id)
        )
        return response

    async def watch(
        self,
        task_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 (the stream's gRPC deadline)
        *,
        progress: bool = False,
    ) -> AsyncIterator[pb.StreamStatusResponse]:
        """The task's current state, then each change, until a terminal status, within
        `timeout` seconds in all; with `progress`, the handler's progress reports too (events
        of kind TASK_EVENT_KIND_PROGRESS, with `progress` and no `task`). A stream cut by
        UNAVAILABLE is opened again: it starts with the current state (changes made while it
        was cut are not replayed) and never repeats the event seen last."""
        last: dict[bool, pb.StreamStatusResponse] = {}
        request = pb.StreamStatusRequest(task_id=task_id)
        async for event in self._stream(self._stub.StreamStatus, request, timeout):
            reported = is_progress(event)
            if reported and not progress:
                continue
            if not same_event(last.get(reported), event):
                yield event
            last[reported] = event

    async def _stream(
        self,
        method: Callable[..., AsyncIterable[Response]],
        request: Any,
        timeout: float | None,  # noqa: ASYNC109 (the stream's gRPC deadline)
    ) -> AsyncIterator[Response]:
        """The messages of a server stream within `timeout` seconds in all; a stream cut by
        UNAVAILABLE is opened again (under the retries, renewed by each message that gets
        through), and starts over with the state as it then stands."""
        ends = None if timeout is None else time.monotonic() + timeout
        delays = self._retries.delays()
        while True:
            remaining = None if ends is None else max(0.0, ends - time.monotonic())
            stream = method(request, timeout=remaining, metadata=self._metadata)
            try:
                async for message in stream:
                    yield message
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

    # Queues

    async def create_queue(
        self,
        name: str,
        *,
        rate_limit_per_second: float | None = None,
        rate_limit_burst: int = 0,
        max_concurrent: int = 0,
        max_concurrent_per_key: int = 0,
        retry_policy: task_pb2.RetryPolicy | None = None,
        timeout: timedelta | None = None,  # noqa: ASYNC109 (the tasks' default, not the call's)
    ) -> queue_pb2.Queue:
        """Creates a queue (ClientError ALREADY_EXISTS when the name is taken). None and 0 mean
        no limit; a burst of 0 means one second's worth. `retry_policy` (see retry_policy())
        and `timeout` are the defaults of the queue's tasks."""
        queue = queue_message(
            name,
            rate_limit_per_second=rate_limit_per_second,
            rate_limit_burst=rate_limit_burst,
            max_concurrent=max_concurrent,
            max_concurrent_per_key=max_concurrent_per_key,
            retry_policy=retry_policy,
            timeout=timeout,
        )
        response: pb.CreateQueueResponse = await self._call(
            self._stub.CreateQueue, pb.CreateQueueRequest(queue=queue)
        )
        return response.queue

    async def get_queue(self, name: str) -> queue_pb2.Queue:
        """The queue with its counts of waiting and running tasks."""
        response: pb.GetQueueResponse = await self._call(
            self._stub.GetQueue, pb.GetQueueRequest(name=name)
        )
        return response.queue

    async def list_queues(self, *, page_size: int = 100) -> AsyncIterator[queue_pb2.Queue]:
        """Every queue, by name, fetching page after page."""
        token = ""
        while True:
            request = pb.ListQueuesRequest(page_size=page_size, page_token=token)
            response: pb.ListQueuesResponse = await self._call(self._stub.ListQueues, request)
            for queue in response.queues:
                yield queue
            token = response.next_page_token
            if not token:
                return

    async def update_queue(self, name: str, **changes: Unpack[QueueChanges]) -> queue_pb2.Queue:
        """Changes the settings given, and only those (the update_mask names them), e.g.
        `update_queue("emails", max_concurrent=10, rate_limit_per_second=None)`."""
        request = update_queue_request(name, changes)
        response: pb.UpdateQueueResponse = await self._call(self._stub.UpdateQueue, request)
        return response.queue

    async def delete_queue(self, name: str) -> None:
        """Deletes a queue: FAILED_PRECONDITION for "default" and while tasks of it wait or
        run (purge it first)."""
        await self._call(self._stub.DeleteQueue, pb.DeleteQueueRequest(name=name))

    async def pause_queue(self, name: str) -> queue_pb2.Queue:
        """Stops the queue's tasks from starting: they wait, PENDING, until resume_queue."""
        response: pb.PauseQueueResponse = await self._call(
            self._stub.PauseQueue, pb.PauseQueueRequest(name=name)
        )
        return response.queue

    async def resume_queue(self, name: str) -> queue_pb2.Queue:
        response: pb.ResumeQueueResponse = await self._call(
            self._stub.ResumeQueue, pb.ResumeQueueRequest(name=name)
        )
        return response.queue

    async def purge_queue(self, name: str) -> Purged:
        """Cancels every waiting task of the queue (running ones go on): (cancelled_count,
        queue)."""
        response: pb.PurgeQueueResponse = await self._call(
            self._stub.PurgeQueue, pb.PurgeQueueRequest(name=name)
        )
        return Purged(response.cancelled_count, response.queue)

    # Schedules

    async def create_schedule(
        self,
        cron: str,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        time_zone: str = "",
        queue: str = "",
        priority: int | None = None,
        concurrency_key: str = "",
        timeout: timedelta | None = None,  # noqa: ASYNC109 (the tasks' default, not the call's)
        overlap: int = schedule_pb2.OVERLAP_POLICY_UNSPECIFIED,
        catchup_window: timedelta | None = None,
        description: str = "",
        paused: bool = False,
        **retry: Unpack[RetryOptions],
    ) -> schedule_pb2.Schedule:
        """Creates a schedule that makes a task (`kind`, `payload` and the task options as
        schedule() takes them) at each fire time of `cron` in `time_zone` (UTC when empty).
        `overlap` is an OverlapPolicy (unset: SKIP). Not tried again after UNAVAILABLE: the
        call has no idempotency key, and a second try could make a second schedule."""
        template = task_template(
            kind,
            payload,
            queue=queue,
            priority=priority,
            concurrency_key=concurrency_key,
            timeout=timeout,
            retry=retry,
        )
        schedule = schedule_message(
            cron,
            template,
            time_zone=time_zone,
            overlap=overlap,
            catchup_window=catchup_window,
            description=description,
            paused=paused,
        )
        response: pb.CreateScheduleResponse = await self._call(
            self._stub.CreateSchedule, pb.CreateScheduleRequest(schedule=schedule), retry=False
        )
        return response.schedule

    async def get_schedule(self, schedule_id: str) -> schedule_pb2.Schedule:
        """The schedule with its next fire times."""
        response: pb.GetScheduleResponse = await self._call(
            self._stub.GetSchedule, pb.GetScheduleRequest(id=schedule_id)
        )
        return response.schedule

    async def list_schedules(self, *, page_size: int = 100) -> AsyncIterator[schedule_pb2.Schedule]:
        """Every schedule, oldest first, fetching page after page."""
        token = ""
        while True:
            request = pb.ListSchedulesRequest(page_size=page_size, page_token=token)
            response: pb.ListSchedulesResponse = await self._call(self._stub.ListSchedules, request)
            for schedule in response.schedules:
                yield schedule
            token = response.next_page_token
            if not token:
                return

    async def update_schedule(
        self, schedule_id: str, **changes: Unpack[ScheduleChanges]
    ) -> schedule_pb2.Schedule:
        """Changes the fields given, and only those (the update_mask names them), e.g.
        `update_schedule(id, cron="0 * * * *", payload={"n": 2})`. The task template is
        replaced as a whole: a change to it (kind, payload, queue, ...) reads the schedule
        first and sends its template with those changes made."""
        template = None
        if touches_template(changes):
            current = await self.get_schedule(schedule_id)
            template = changed_template(current.task, changes)
        request = update_schedule_request(schedule_id, changes, template)
        response: pb.UpdateScheduleResponse = await self._call(self._stub.UpdateSchedule, request)
        return response.schedule

    async def delete_schedule(self, schedule_id: str) -> None:
        """Deletes a schedule; the tasks it made stay."""
        await self._call(self._stub.DeleteSchedule, pb.DeleteScheduleRequest(id=schedule_id))

    async def pause_schedule(self, schedule_id: str) -> schedule_pb2.Schedule:
        response: pb.PauseScheduleResponse = await self._call(
            self._stub.PauseSchedule, pb.PauseScheduleRequest(id=schedule_id)
        )
        return response.schedule

    async def resume_schedule(self, schedule_id: str) -> schedule_pb2.Schedule:
        """Fires again, from the next fire time after now."""
        response: pb.ResumeScheduleResponse = await self._call(
            self._stub.ResumeSchedule, pb.ResumeScheduleRequest(id=schedule_id)
        )
        return response.schedule

    async def trigger_schedule(self, schedule_id: str) -> task_pb2.Task:
        """Fires the schedule now, paused or not, whatever its overlap policy: the new task.
        Not tried again after UNAVAILABLE (a second try could make a second task)."""
        response: pb.TriggerScheduleResponse = await self._call(
            self._stub.TriggerSchedule, pb.TriggerScheduleRequest(id=schedule_id), retry=False
        )
        return response.task

    # Workflows

    def workflow(self) -> WorkflowPlan:
        """A workflow to build step by step (`plan.step(name, kind, payload, depends_on=...)`),
        then to create with create_workflow(plan)."""
        return WorkflowPlan()

    async def create_workflow(
        self,
        steps: Canvas | WorkflowPlan,
        *,
        name: str = "",
        on_failure: workflow_pb2.FailurePolicy.ValueType = workflow_pb2.FAILURE_POLICY_UNSPECIFIED,
        request_id: str | None = None,
    ) -> workflow_pb2.Workflow:
        """Creates a workflow from a canvas (`chain`, `group`, `chord` of `task`s) or a plan
        (workflow()). `on_failure` is a FailurePolicy (unset: CANCEL_WORKFLOW). Without a
        `request_id` one is made up, so that a retried call never creates it twice."""
        request = workflow_request(steps, name=name, on_failure=on_failure, request_id=request_id)
        response: pb.CreateWorkflowResponse = await self._call(self._stub.CreateWorkflow, request)
        return response.workflow

    async def get_workflow(self, workflow_id: str) -> workflow_pb2.Workflow:
        """The workflow with its steps."""
        response: pb.GetWorkflowResponse = await self._call(
            self._stub.GetWorkflow, pb.GetWorkflowRequest(workflow_id=workflow_id)
        )
        return response.workflow

    async def list_workflows(
        self, *, statuses: Iterable[int] = (), page_size: int = 100
    ) -> AsyncIterator[workflow_pb2.Workflow]:
        """Every workflow in `statuses` (WorkflowStatus; empty means any), newest first, without
        their steps, fetching page after page."""
        token = ""
        while True:
            request = pb.ListWorkflowsRequest(page_size=page_size, page_token=token)
            request.statuses.extend(
                workflow_pb2.WorkflowStatus.ValueType(status) for status in statuses
            )
            response: pb.ListWorkflowsResponse = await self._call(self._stub.ListWorkflows, request)
            for workflow in response.workflows:
                yield workflow
            token = response.next_page_token
            if not token:
                return

    async def cancel_workflow(self, workflow_id: str) -> workflow_pb2.Workflow:
        """Cancels every step that has not finished (running ones are asked to stop). A
        workflow already CANCELLED is returned as it is (a cancel retried after UNAVAILABLE
        may find its own earlier try committed); one finished otherwise raises ClientError
        FAILED_PRECONDITION."""
        try:
            response: pb.CancelWorkflowResponse = await self._call(
                self._stub.CancelWorkflow, pb.CancelWorkflowRequest(workflow_id=workflow_id)
            )
        except ClientError as error:
            if error.reason != "WORKFLOW_ALREADY_FINISHED":
                raise
            workflow = await self.get_workflow(workflow_id)
            if workflow.status != workflow_pb2.WORKFLOW_STATUS_CANCELLED:
                raise
            return workflow
        return response.workflow

    async def watch_workflow(
        self,
        workflow_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 (the stream's gRPC deadline)
    ) -> AsyncIterator[pb.StreamWorkflowResponse]:
        """The workflow as it stands, then each step's change, until the workflow is terminal
        (its last event carries it whole), within `timeout` seconds in all. A stream cut by
        UNAVAILABLE is opened again, starting with the workflow as it then stands."""
        request = pb.StreamWorkflowRequest(workflow_id=workflow_id)
        async for event in self._stream(self._stub.StreamWorkflow, request, timeout):
            yield event

    async def wait_workflow(
        self,
        workflow_id: str,
        timeout: float = 60.0,  # noqa: ASYNC109 (the stream's gRPC deadline)
    ) -> workflow_pb2.Workflow:
        """Returns the workflow, with its steps, once terminal (SUCCESS, FAILED or CANCELLED);
        raises WorkflowNotFinished after `timeout` seconds."""
        seen: workflow_pb2.Workflow | None = None
        try:
            async for event in self.watch_workflow(workflow_id, timeout=timeout):
                if event.HasField("workflow"):
                    seen = event.workflow
                    if seen.status in WORKFLOW_FINISHED:
                        return seen
        except ClientError as error:
            if error.code is not grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        raise WorkflowNotFinished(seen or await self.get_workflow(workflow_id))

    async def failure_groups(self, *, kind: str = "", queue: str = "") -> Sequence[pb.FailureGroup]:
        """The FAILED tasks (of a kind, of a queue; empty means any) grouped by their last
        attempt's error type, most failures first; retry_many(statuses=[FAILED],
        error_type=...) retries a group."""
        request = pb.ListFailureGroupsRequest(kind=kind, queue=queue)
        response: pb.ListFailureGroupsResponse = await self._call(
            self._stub.ListFailureGroups, request
        )
        return response.groups

    async def activity(self, *, queue: str = "") -> Sequence[pb.QueueActivity]:
        """Each queue's (or this one's) last hour minute by minute: tasks succeeded, failed,
        started, and the started ones' wait from run_at."""
        response: pb.GetActivityResponse = await self._call(
            self._stub.GetActivity, pb.GetActivityRequest(queue=queue)
        )
        return response.queues

    async def list_workers(self, *, states: Iterable[int] = ()) -> Sequence[worker_pb2.Worker]:
        """Every worker process in `states` (WorkerState; empty means any): each Celery
        worker's main process, then its pool processes, with the caller's tasks each runs."""
        request = pb.ListWorkersRequest(
            states=[worker_pb2.WorkerState.ValueType(state) for state in states]
        )
        response: pb.ListWorkersResponse = await self._call(self._stub.ListWorkers, request)
        return response.workers
