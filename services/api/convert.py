"""Conversions between protobuf messages and core types, at the edge of the api."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from taskscheduler.core.bulk import BulkResult, Selection
from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.explain import Explanation
from taskscheduler.core.insights import QueueActivity
from taskscheduler.core.model import (
    DEFAULT_CATCHUP_WINDOW,
    DEFAULT_QUEUE,
    JSON,
    Attempt,
    FailurePolicy,
    Overlap,
    Progress,
    ProgressEvent,
    Queue,
    QueueSettings,
    QueueState,
    RateLimit,
    RetryPolicy,
    RetryPolicyOverride,
    Schedule,
    ScheduleSpec,
    Task,
    TaskFilter,
    TaskStatus,
    TaskTemplate,
    Worker,
    WorkerState,
    Workflow,
    WorkflowStatus,
    WorkflowStep,
)
from taskscheduler.core.ports import FailureGroup
from taskscheduler.core.schedules import next_fire_times
from taskscheduler.core.tasks import (
    ListRequest,
    ScheduleRequest,
    TaskChange,
    id_range_of_prefix,
    parse_task_id,
)
from taskscheduler.core.workflows import (
    StepRequest,
    WorkflowEvent,
    WorkflowListRequest,
    WorkflowRequest,
)
from taskscheduler.protojson import struct_to_dict
from taskscheduler.v1 import (
    queue_pb2,
    schedule_pb2,
    task_pb2,
    task_service_pb2,
    worker_pb2,
    workflow_pb2,
)

_STATUS_TO_PROTO = {
    status: task_pb2.TaskStatus.Value(f"TASK_STATUS_{status.value}") for status in TaskStatus
}
_STATUS_FROM_PROTO = {number: status for status, number in _STATUS_TO_PROTO.items()}


def status_to_proto(status: TaskStatus) -> task_pb2.TaskStatus.ValueType:
    return _STATUS_TO_PROTO[status]


def status_from_proto(value: int, field: str) -> TaskStatus:
    status: TaskStatus | None = _STATUS_FROM_PROTO.get(task_pb2.TaskStatus.ValueType(value))
    if status is None:
        raise InvalidArgument(field, f"{value} is not a task status")
    return status


def _stamp(value: datetime) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    return None if value is None else _stamp(value)


def _duration(value: timedelta | None) -> duration_pb2.Duration | None:
    if value is None:
        return None
    message = duration_pb2.Duration()
    message.FromTimedelta(value)
    return message


MAX_DURATION_SECONDS = 315_576_000_000
"""protobuf's own bound on a valid Duration (10,000 years); larger values are malformed."""
MAX_NANOS = 999_999_999


def _from_duration(message: duration_pb2.Duration, field: str) -> timedelta:
    if message.seconds < 0 or message.nanos < 0:
        raise InvalidArgument(field, "must not be negative")
    if message.seconds > MAX_DURATION_SECONDS or message.nanos > MAX_NANOS:
        raise InvalidArgument(field, "is out of range")
    return message.ToTimedelta()


def _from_timestamp(message: timestamp_pb2.Timestamp, field: str) -> datetime:
    if not 0 <= message.nanos <= MAX_NANOS:
        raise InvalidArgument(field, "is out of range")
    try:
        return message.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(field, "is out of range") from None


def _payload(message: struct_pb2.Struct, field: str) -> dict[str, JSON]:
    """A Struct as JSON; a Struct can hold NaN and the infinities, which JSON (and so the
    store) cannot."""
    try:
        return struct_to_dict(message)
    except ValueError:
        raise InvalidArgument(field, "holds NaN or Infinity, which JSON cannot carry") from None


def _payload_filter(
    request: task_service_pb2.ListTasksRequest | task_service_pb2.TaskSelector, field: str
) -> dict[str, JSON] | None:
    if not request.HasField("payload_contains"):
        return None
    return _payload(request.payload_contains, field)


def count_window_from_proto(request: task_service_pb2.CountTasksRequest) -> timedelta | None:
    if not request.HasField("finished_within"):
        return None
    return _from_duration(request.finished_within, "finished_within")


def retry_policy_to_proto(policy: RetryPolicy) -> task_pb2.RetryPolicy:
    return task_pb2.RetryPolicy(
        max_attempts=policy.max_attempts,
        initial_backoff=_duration(policy.initial_backoff),
        max_backoff=_duration(policy.max_backoff),
        backoff_multiplier=policy.backoff_multiplier,
        jitter=policy.jitter,
    )


def attempt_to_proto(attempt: Attempt) -> task_pb2.Attempt:
    return task_pb2.Attempt(
        number=attempt.number,
        status=status_to_proto(attempt.status),
        worker=attempt.worker,
        start_time=_timestamp(attempt.start_time),
        finish_time=_timestamp(attempt.finish_time),
        error_type=attempt.error_type,
        error_message=attempt.error_message,
        traceback=attempt.traceback,
    )


def task_to_proto(task: Task) -> task_pb2.Task:
    message = task_pb2.Task(
        id=str(task.id),
        kind=task.kind,
        status=status_to_proto(task.status),
        attempt=task.attempt,
        max_attempts=task.max_attempts,
        run_at=_timestamp(task.run_at),
        create_time=_timestamp(task.create_time),
        update_time=_timestamp(task.update_time),
        start_time=_timestamp(task.start_time),
        finish_time=_timestamp(task.finish_time),
        error=task.error,
        attempts=[attempt_to_proto(attempt) for attempt in task.attempts],
        retry_policy=retry_policy_to_proto(task.retry_policy),
        timeout=_duration(task.timeout),
        request_id=task.request_id,
        queue=task.queue,
        priority=task.priority,
        concurrency_key=task.concurrency_key,
        schedule_id=str(task.schedule_id) if task.schedule_id else "",
        fire_time=_timestamp(task.fire_time),
        workflow_id=str(task.workflow_id) if task.workflow_id else "",
        step_name=task.step_name,
        depends_on=[str(task_id) for task_id in task.depends_on],
        progress=None if task.progress is None else progress_to_proto(task.progress),
    )
    message.payload.update(task.payload)
    if task.result is not None:
        json_format.ParseDict(task.result, message.result)
    return message


def progress_to_proto(progress: Progress) -> task_pb2.Progress:
    return task_pb2.Progress(
        done=progress.done,
        total=progress.total,
        message=progress.message,
        update_time=_timestamp(progress.update_time),
    )


def change_to_proto(change: TaskChange) -> task_service_pb2.StreamStatusResponse:
    """A StreamStatus message: a status change with the task, or a progress report."""
    if isinstance(change, ProgressEvent):
        return task_service_pb2.StreamStatusResponse(
            task_id=str(change.task_id),
            status=status_to_proto(TaskStatus.RUNNING),
            attempt=change.attempt,
            event_time=_timestamp(change.progress.update_time),
            kind=task_service_pb2.TASK_EVENT_KIND_PROGRESS,
            progress=progress_to_proto(change.progress),
        )
    event, task = change
    return task_service_pb2.StreamStatusResponse(
        task_id=str(event.task_id),
        status=status_to_proto(event.status),
        attempt=event.attempt,
        event_time=_timestamp(event.event_time),
        task=task_to_proto(task),
        kind=task_service_pb2.TASK_EVENT_KIND_STATUS,
    )


def _retry_override(
    request: task_service_pb2.ScheduleTaskRequest | queue_pb2.Queue | schedule_pb2.TaskTemplate,
    prefix: str = "retry_policy.",
) -> RetryPolicyOverride:
    if not request.HasField("retry_policy"):
        return RetryPolicyOverride()
    policy = request.retry_policy
    return RetryPolicyOverride(
        max_attempts=policy.max_attempts or None,
        initial_backoff=_from_duration(policy.initial_backoff, prefix + "initial_backoff")
        if policy.HasField("initial_backoff")
        else None,
        max_backoff=_from_duration(policy.max_backoff, prefix + "max_backoff")
        if policy.HasField("max_backoff")
        else None,
        backoff_multiplier=policy.backoff_multiplier or None,
        jitter=policy.jitter if policy.HasField("jitter") else None,
    )


def schedule_request_from_proto(request: task_service_pb2.ScheduleTaskRequest) -> ScheduleRequest:
    payload: struct_pb2.Struct = request.payload
    return ScheduleRequest(
        kind=request.kind,
        payload=_payload(payload, "payload") if request.HasField("payload") else {},
        run_at=_from_timestamp(request.run_at, "run_at") if request.HasField("run_at") else None,
        retry_policy=_retry_override(request),
        timeout=_from_duration(request.timeout, "timeout") if request.HasField("timeout") else None,
        request_id=request.request_id,
        queue=request.queue,
        priority=request.priority if request.HasField("priority") else None,
        concurrency_key=request.concurrency_key,
        depends_on=tuple(request.depends_on),
    )


def list_request_from_proto(request: task_service_pb2.ListTasksRequest) -> ListRequest:
    statuses = frozenset(status_from_proto(value, "statuses") for value in request.statuses)
    schedule_id = parse_task_id(request.schedule_id, "schedule_id") if request.schedule_id else None
    workflow_id = parse_task_id(request.workflow_id, "workflow_id") if request.workflow_id else None
    return ListRequest(
        task_filter=TaskFilter(
            statuses=statuses,
            kind=request.kind,
            queue=request.queue,
            schedule_id=schedule_id,
            workflow_id=workflow_id,
            id_range=id_range_of_prefix(request.task_id_prefix) if request.task_id_prefix else None,
            error_type=request.error_type,
            payload_contains=_payload_filter(request, "payload_contains"),
        ),
        page_size=request.page_size,
        page_token=request.page_token,
    )


_QUEUE_STATE_TO_PROTO = {
    QueueState.RUNNING: queue_pb2.QUEUE_STATE_RUNNING,
    QueueState.PAUSED: queue_pb2.QUEUE_STATE_PAUSED,
}


def _override_to_proto(policy: RetryPolicyOverride) -> task_pb2.RetryPolicy | None:
    if policy == RetryPolicyOverride():
        return None
    message = task_pb2.RetryPolicy(
        max_attempts=policy.max_attempts or 0,
        initial_backoff=_duration(policy.initial_backoff),
        max_backoff=_duration(policy.max_backoff),
        backoff_multiplier=policy.backoff_multiplier or 0,
    )
    if policy.jitter is not None:
        message.jitter = policy.jitter
    return message


def queue_to_proto(queue: Queue) -> queue_pb2.Queue:
    settings = queue.settings
    rate = settings.rate_limit
    return queue_pb2.Queue(
        name=queue.name,
        state=_QUEUE_STATE_TO_PROTO[queue.state],
        rate_limit=None
        if rate is None
        else queue_pb2.RateLimit(per_second=rate.per_second, burst=rate.burst),
        max_concurrent=settings.max_concurrent,
        max_concurrent_per_key=settings.max_concurrent_per_key,
        retry_policy=_override_to_proto(settings.retry_policy),
        timeout=_duration(settings.timeout),
        create_time=_timestamp(queue.create_time),
        update_time=_timestamp(queue.update_time),
        waiting_count=queue.waiting,
        running_count=queue.running,
    )


def queue_settings_from_proto(queue: queue_pb2.Queue) -> QueueSettings:
    rate = None
    if queue.HasField("rate_limit"):
        rate = RateLimit(queue.rate_limit.per_second, queue.rate_limit.burst)
    return QueueSettings(
        rate_limit=rate,
        max_concurrent=queue.max_concurrent,
        max_concurrent_per_key=queue.max_concurrent_per_key,
        retry_policy=_retry_override(queue),
        timeout=_from_duration(queue.timeout, "timeout") if queue.HasField("timeout") else None,
    )


_OVERLAP_TO_PROTO = {
    Overlap.SKIP: schedule_pb2.OVERLAP_POLICY_SKIP,
    Overlap.ALLOW: schedule_pb2.OVERLAP_POLICY_ALLOW,
    Overlap.BUFFER_ONE: schedule_pb2.OVERLAP_POLICY_BUFFER_ONE,
}
_OVERLAP_FROM_PROTO = {number: overlap for overlap, number in _OVERLAP_TO_PROTO.items()}


def schedule_to_proto(schedule: Schedule) -> schedule_pb2.Schedule:
    spec = schedule.spec
    task = spec.task
    template = schedule_pb2.TaskTemplate(
        kind=task.kind,
        queue=task.queue,
        concurrency_key=task.concurrency_key,
        retry_policy=_override_to_proto(task.retry_policy),
        timeout=_duration(task.timeout),
    )
    template.payload.update(task.payload)
    if task.priority is not None:
        template.priority = task.priority
    return schedule_pb2.Schedule(
        id=str(schedule.id),
        cron=spec.cron,
        time_zone=spec.time_zone,
        task=template,
        overlap=_OVERLAP_TO_PROTO[spec.overlap],
        catchup_window=_duration(spec.catchup_window),
        paused=schedule.paused,
        description=spec.description,
        next_fire_times=[_stamp(time) for time in next_fire_times(schedule)],
        last_fire_time=_timestamp(schedule.last_fire_time),
        last_task_id=str(schedule.last_task_id) if schedule.last_task_id else "",
        create_time=_timestamp(schedule.create_time),
        update_time=_timestamp(schedule.update_time),
    )


def template_from_proto(task: schedule_pb2.TaskTemplate, prefix: str) -> TaskTemplate:
    """A task template; errors name their field under `prefix` ("task.", "steps[0].task.")."""
    timeout = None
    if task.HasField("timeout"):
        timeout = _from_duration(task.timeout, prefix + "timeout")
    return TaskTemplate(
        kind=task.kind,
        payload=_payload(task.payload, prefix + "payload") if task.HasField("payload") else {},
        queue=task.queue or DEFAULT_QUEUE,
        priority=task.priority if task.HasField("priority") else None,
        concurrency_key=task.concurrency_key,
        retry_policy=_retry_override(task, prefix + "retry_policy."),
        timeout=timeout,
    )


def schedule_spec_from_proto(schedule: schedule_pb2.Schedule) -> ScheduleSpec:
    task = schedule.task
    overlap = _OVERLAP_FROM_PROTO.get(schedule.overlap, Overlap.SKIP)
    if schedule.overlap and schedule.overlap not in _OVERLAP_FROM_PROTO:
        raise InvalidArgument("overlap", f"{schedule.overlap} is not an overlap policy")
    template = template_from_proto(task, "task.")
    catchup = DEFAULT_CATCHUP_WINDOW
    if schedule.HasField("catchup_window"):
        catchup = _from_duration(schedule.catchup_window, "catchup_window")
    return ScheduleSpec(
        cron=schedule.cron,
        task=template,
        time_zone=schedule.time_zone or "UTC",
        overlap=overlap,
        catchup_window=catchup,
        description=schedule.description,
    )


_WORKFLOW_STATUS_TO_PROTO = {
    status: workflow_pb2.WorkflowStatus.Value(f"WORKFLOW_STATUS_{status.value}")
    for status in WorkflowStatus
}
_WORKFLOW_STATUS_FROM_PROTO = {
    number: status for status, number in _WORKFLOW_STATUS_TO_PROTO.items()
}
_FAILURE_POLICY_TO_PROTO = {
    policy: workflow_pb2.FailurePolicy.Value(f"FAILURE_POLICY_{policy.value}")
    for policy in FailurePolicy
}
_FAILURE_POLICY_FROM_PROTO = {number: policy for policy, number in _FAILURE_POLICY_TO_PROTO.items()}


def step_to_proto(step: WorkflowStep) -> workflow_pb2.WorkflowStep:
    return workflow_pb2.WorkflowStep(
        name=step.name,
        task_id=str(step.task_id),
        status=status_to_proto(step.status),
        depends_on=list(step.depends_on),
        kind=step.kind,
        start_time=_timestamp(step.start_time),
        finish_time=_timestamp(step.finish_time),
    )


def workflow_to_proto(workflow: Workflow) -> workflow_pb2.Workflow:
    return workflow_pb2.Workflow(
        id=str(workflow.id),
        name=workflow.name,
        status=_WORKFLOW_STATUS_TO_PROTO[workflow.status],
        on_failure=_FAILURE_POLICY_TO_PROTO[workflow.on_failure],
        steps=[step_to_proto(step) for step in workflow.steps],
        step_count=workflow.step_count,
        create_time=_timestamp(workflow.create_time),
        update_time=_timestamp(workflow.update_time),
        finish_time=_timestamp(workflow.finish_time),
        request_id=workflow.request_id,
    )


def workflow_event_to_proto(event: WorkflowEvent) -> task_service_pb2.StreamWorkflowResponse:
    return task_service_pb2.StreamWorkflowResponse(
        workflow=None if event.workflow is None else workflow_to_proto(event.workflow),
        step=None if event.step is None else step_to_proto(event.step),
        status=_WORKFLOW_STATUS_TO_PROTO[event.status],
        event_time=_timestamp(event.event_time),
    )


def workflow_request_from_proto(request: task_service_pb2.CreateWorkflowRequest) -> WorkflowRequest:
    on_failure = _FAILURE_POLICY_FROM_PROTO.get(request.on_failure)
    if request.on_failure and on_failure is None:
        raise InvalidArgument("on_failure", f"{request.on_failure} is not a failure policy")
    steps = []
    for index, step in enumerate(request.steps):
        prefix = f"steps[{index}]."
        run_at = None
        if step.HasField("run_at"):
            run_at = _from_timestamp(step.run_at, prefix + "run_at")
        steps.append(
            StepRequest(
                name=step.name,
                task=template_from_proto(step.task, prefix + "task."),
                depends_on=tuple(step.depends_on),
                run_at=run_at,
            )
        )
    return WorkflowRequest(
        steps=tuple(steps),
        name=request.name,
        on_failure=on_failure or FailurePolicy.CANCEL_WORKFLOW,
        request_id=request.request_id,
    )


def workflow_list_request_from_proto(
    request: task_service_pb2.ListWorkflowsRequest,
) -> WorkflowListRequest:
    statuses = set()
    for value in request.statuses:
        status = _WORKFLOW_STATUS_FROM_PROTO.get(value)
        if status is None:
            raise InvalidArgument("statuses", f"{value} is not a workflow status")
        statuses.add(status)
    return WorkflowListRequest(frozenset(statuses), request.page_size, request.page_token)


_WORKER_STATE_TO_PROTO = {
    state: worker_pb2.WorkerState.Value(f"WORKER_STATE_{state.value}") for state in WorkerState
}
_WORKER_STATE_FROM_PROTO = {number: state for state, number in _WORKER_STATE_TO_PROTO.items()}


def worker_states_from_proto(request: task_service_pb2.ListWorkersRequest) -> set[WorkerState]:
    states = set()
    for index, value in enumerate(request.states):
        state = _WORKER_STATE_FROM_PROTO.get(worker_pb2.WorkerState.ValueType(value))
        if state is None:
            raise InvalidArgument(f"states[{index}]", f"{value} is not a worker state")
        states.add(state)
    return states


def worker_to_proto(worker: Worker) -> worker_pb2.Worker:
    registration = worker.registration
    return worker_pb2.Worker(
        name=registration.name,
        host=registration.host,
        pid=registration.pid,
        queues=registration.queues,
        concurrency=registration.concurrency,
        running_task_ids=[str(task_id) for task_id in worker.running_task_ids],
        start_time=_stamp(worker.start_time),
        heartbeat_time=_stamp(worker.heartbeat_time),
        state=_WORKER_STATE_TO_PROTO[worker.state],
        celery_hostname=registration.celery_hostname,
        parent=registration.parent,
        version=registration.version,
        stop_time=_timestamp(worker.stop_time),
        heartbeat_interval=_duration(timedelta(seconds=registration.heartbeat_seconds)),
    )


def explanation_to_proto(explanation: Explanation) -> task_service_pb2.ExplainTaskResponse:
    return task_service_pb2.ExplainTaskResponse(
        task_id=str(explanation.task_id),
        status=status_to_proto(explanation.status),
        reasons=[
            task_service_pb2.WaitReason(
                code=task_service_pb2.WaitReasonCode.Value(f"WAIT_REASON_CODE_{reason.code.value}"),
                message=reason.message,
                until=_timestamp(reason.until),
                task_ids=[str(task_id) for task_id in reason.task_ids],
                count=reason.count,
                limit=reason.limit,
            )
            for reason in explanation.reasons
        ],
        worker=explanation.worker,
        lease_expire_time=_timestamp(explanation.lease_expires_at),
    )


BulkRequest = task_service_pb2.BatchCancelTasksRequest | task_service_pb2.BatchRetryTasksRequest


def selection_from_proto(request: BulkRequest) -> Selection:
    if not request.HasField("filter"):
        return Selection(task_ids=tuple(request.task_ids), dry_run=request.dry_run)
    selector = request.filter

    def optional_id(value: str, field: str) -> uuid.UUID | None:
        return parse_task_id(value, f"filter.{field}") if value else None

    def optional_time(field: str) -> datetime | None:
        stamp: timestamp_pb2.Timestamp = getattr(selector, field)
        if not selector.HasField(field):  # type: ignore[arg-type]  # one of the four names
            return None
        return _from_timestamp(stamp, f"filter.{field}")

    task_filter = TaskFilter(
        statuses=frozenset(status_from_proto(v, "filter.statuses") for v in selector.statuses),
        kind=selector.kind,
        queue=selector.queue,
        schedule_id=optional_id(selector.schedule_id, "schedule_id"),
        workflow_id=optional_id(selector.workflow_id, "workflow_id"),
        created_after=optional_time("create_time_after"),
        created_before=optional_time("create_time_before"),
        finished_after=optional_time("finish_time_after"),
        finished_before=optional_time("finish_time_before"),
        error_type=selector.error_type,
        payload_contains=_payload_filter(selector, "filter.payload_contains"),
        id_range=id_range_of_prefix(selector.task_id_prefix, "filter.task_id_prefix")
        if selector.task_id_prefix
        else None,
    )
    return Selection(tuple(request.task_ids), task_filter, request.dry_run)


def _not_acted_to_proto(result: BulkResult) -> list[task_service_pb2.TaskNotActed]:
    return [
        task_service_pb2.TaskNotActed(
            task_id=item.task_id, reason=item.reason, message=item.message
        )
        for item in result.not_acted
    ]


def cancelled_to_proto(result: BulkResult) -> task_service_pb2.BatchCancelTasksResponse:
    return task_service_pb2.BatchCancelTasksResponse(
        matched_count=result.matched,
        cancelled_count=result.acted,
        not_acted_count=result.not_acted_count,
        not_acted=_not_acted_to_proto(result),
    )


def retried_to_proto(result: BulkResult) -> task_service_pb2.BatchRetryTasksResponse:
    return task_service_pb2.BatchRetryTasksResponse(
        matched_count=result.matched,
        retried_count=result.acted,
        not_acted_count=result.not_acted_count,
        not_acted=_not_acted_to_proto(result),
        retried=[
            task_service_pb2.RetriedTask(task_id=str(original), copy_id=str(copy))
            for original, copy in result.copies
        ],
    )


def failure_groups_to_proto(
    groups: list[FailureGroup],
) -> task_service_pb2.ListFailureGroupsResponse:
    return task_service_pb2.ListFailureGroupsResponse(
        groups=[
            task_service_pb2.FailureGroup(
                error_type=group.error_type,
                count=group.count,
                first_finish_time=_timestamp(group.first_finish_time),
                last_finish_time=_timestamp(group.last_finish_time),
                latest_task_id=str(group.latest_task_id),
                latest_message=group.latest_message,
            )
            for group in groups
        ]
    )


def activity_to_proto(queues: list[QueueActivity]) -> task_service_pb2.GetActivityResponse:
    return task_service_pb2.GetActivityResponse(
        queues=[
            task_service_pb2.QueueActivity(
                queue=queue.queue,
                minutes=[
                    task_service_pb2.ActivityMinute(
                        start_time=_timestamp(minute.minute),
                        succeeded=minute.succeeded,
                        failed=minute.failed,
                        started=minute.started,
                        wait_p50=_duration(minute.wait_p50),
                        wait_p95=_duration(minute.wait_p95),
                    )
                    for minute in queue.minutes
                ],
            )
            for queue in queues
        ]
    )
