"""What both clients share: request building, the retry schedule, and errors."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypedDict, TypeVar, Unpack

import grpc
from google.protobuf import duration_pb2, struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from taskscheduler.v1 import queue_pb2, schedule_pb2, task_pb2, worker_pb2, workflow_pb2
from taskscheduler.v1 import task_service_pb2 as pb

DEFAULT_ADDRESS = "127.0.0.1:50051"
CHANNEL_OPTIONS = (("grpc.lb_policy_name", "round_robin"), ("grpc.max_reconnect_backoff_ms", 5000))
"""Calls spread over every address of the target, and pass over one that is down: a list of
replicas ("ipv4:10.0.0.1:50051,10.0.0.2:50051") or a DNS name with several records
("dns:///api.tasks.svc:50051", a Kubernetes headless service). A replica back from a restart
is tried again within 5 s (gRPC's default backoff grows to two minutes)."""
FINISHED = frozenset(
    {task_pb2.TASK_STATUS_SUCCESS, task_pb2.TASK_STATUS_FAILED, task_pb2.TASK_STATUS_CANCELLED}
)
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})


def status_name(status: int) -> str:
    """TASK_STATUS_SUCCESS -> SUCCESS."""
    return task_pb2.TaskStatus.Name(status).removeprefix("TASK_STATUS_")  # type: ignore[arg-type]


def worker_state_name(state: int) -> str:
    """WORKER_STATE_ONLINE -> ONLINE."""
    return worker_pb2.WorkerState.Name(state).removeprefix("WORKER_STATE_")  # type: ignore[arg-type]


def workflow_status_name(status: int) -> str:
    """WORKFLOW_STATUS_SUCCESS -> SUCCESS."""
    name = workflow_pb2.WorkflowStatus.Name(status)  # type: ignore[arg-type]
    return name.removeprefix("WORKFLOW_STATUS_")


@dataclass(frozen=True)
class Retries:
    """How a call that fails with UNAVAILABLE is tried again: up to `attempts` tries in all,
    waiting a random time up to an exponential backoff (full jitter) between them."""

    attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def delays(self) -> Iterator[float | None]:
        """The wait before each further try, then None: no more tries."""
        for number in range(self.attempts - 1):
            ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier**number)
            yield random.uniform(0, ceiling)
        yield None


class ClientError(Exception):
    """A call failed: its gRPC `code`, the service's `reason` (google.rpc.ErrorInfo, e.g.
    TASK_NOT_FOUND) and, for a bad request, the `field` at fault."""

    def __init__(self, code: grpc.StatusCode, details: str, reason: str = "", field: str = ""):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.reason = reason
        self.field = field

    @classmethod
    def of(cls, error: grpc.RpcError) -> ClientError:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        reason, field = "", ""
        status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
        for detail in status.details if status is not None else []:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                reason, field = info.reason, info.metadata.get("field", "")
        return cls(code, details or "", reason, field)


class TaskNotFinished(TimeoutError):
    """wait() ran out of time; `task` is the task as last seen."""

    def __init__(self, task: task_pb2.Task) -> None:
        super().__init__(f"task {task.id} is still {status_name(task.status)}")
        self.task = task


class WorkflowNotFinished(TimeoutError):
    """wait_workflow() ran out of time; `workflow` is the workflow as last read."""

    def __init__(self, workflow: workflow_pb2.Workflow) -> None:
        super().__init__(f"workflow {workflow.id} is still {workflow_status_name(workflow.status)}")
        self.workflow = workflow


WORKFLOW_FINISHED = frozenset(
    {
        workflow_pb2.WORKFLOW_STATUS_SUCCESS,
        workflow_pb2.WORKFLOW_STATUS_FAILED,
        workflow_pb2.WORKFLOW_STATUS_CANCELLED,
    }
)


class RetryOptions(TypedDict, total=False):
    """A task's retry policy, field by field, as schedule() and the schedule templates take it:
    a field not given (or None) takes the queue's, the kind's, then the service's default."""

    max_attempts: int | None
    """Attempts in all, the first one included (1: no retry)."""
    initial_backoff: timedelta | None
    """The wait before the second attempt."""
    max_backoff: timedelta | None
    """The longest wait between two attempts."""
    backoff_multiplier: float | None
    """The factor applied to the wait after each failed attempt (at least 1)."""
    jitter: bool | None
    """True: each wait drawn at random up to the computed backoff (full jitter)."""


RETRY_FIELDS = frozenset(RetryOptions.__annotations__)


def task_request(
    kind: str,
    payload: Mapping[str, Any] | None = None,
    *,
    run_at: datetime | None = None,
    timeout: timedelta | None = None,
    request_id: str | None = None,
    queue: str = "",
    priority: int | None = None,
    concurrency_key: str = "",
    depends_on: Iterable[str] = (),
    **retry: Unpack[RetryOptions],
) -> pb.ScheduleTaskRequest:
    """One task to schedule, from schedule()'s arguments: what schedule_many() takes. Without a
    `request_id` one is made up, so that a retried call never schedules the task twice."""
    request = pb.ScheduleTaskRequest(
        kind=kind,
        request_id=request_id or str(uuid.uuid4()),
        queue=queue,
        concurrency_key=concurrency_key,
        depends_on=depends_on,
    )
    if payload:
        request.payload.CopyFrom(struct(payload))
    if run_at is not None:
        request.run_at.FromDatetime(run_at)
    if timeout is not None:
        request.timeout.FromTimedelta(timeout)
    if retry:
        request.retry_policy.CopyFrom(retry_policy(**retry))
    if priority is not None:
        request.priority = priority
    return request


def struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(dict(values))
    return message


def list_request(
    kind: str,
    statuses: Iterable[int],
    page_size: int,
    page_token: str,
    queue: str = "",
    schedule_id: str = "",
    workflow_id: str = "",
    task_id_prefix: str = "",
    error_type: str = "",
    payload_contains: Mapping[str, Any] | None = None,
) -> pb.ListTasksRequest:
    request = pb.ListTasksRequest(
        kind=kind,
        page_size=page_size,
        page_token=page_token,
        queue=queue,
        schedule_id=schedule_id,
        workflow_id=workflow_id,
        task_id_prefix=task_id_prefix,
        error_type=error_type,
    )
    request.statuses.extend(task_pb2.TaskStatus.ValueType(status) for status in statuses)
    if payload_contains is not None:
        request.payload_contains.update(payload_contains)
    return request


def retry_policy(
    *,
    max_attempts: int | None = None,
    initial_backoff: timedelta | None = None,
    max_backoff: timedelta | None = None,
    backoff_multiplier: float | None = None,
    jitter: bool | None = None,
) -> task_pb2.RetryPolicy:
    """A RetryPolicy (for a queue's defaults) from the fields given; the rest stay unset and
    take the kind's, then the service's defaults."""
    policy = task_pb2.RetryPolicy(
        max_attempts=max_attempts or 0, backoff_multiplier=backoff_multiplier or 0.0
    )
    if initial_backoff is not None:
        policy.initial_backoff.CopyFrom(duration(initial_backoff))
    if max_backoff is not None:
        policy.max_backoff.CopyFrom(duration(max_backoff))
    if jitter is not None:
        policy.jitter = jitter
    return policy


def duration(value: timedelta) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(value)
    return message


class QueueChanges(TypedDict, total=False):
    """The settings update_queue may change: each one given is set (and named in the
    update_mask), the others stay as they are."""

    rate_limit_per_second: float | None
    """None removes the rate limit."""
    rate_limit_burst: int
    """Only with rate_limit_per_second (the rate limit is replaced as a whole); 0 means one
    second's worth."""
    max_concurrent: int
    max_concurrent_per_key: int
    retry_policy: task_pb2.RetryPolicy | None
    """Replaces the queue's retry policy as a whole; None removes it."""
    timeout: timedelta | None
    """None removes the queue's default timeout."""


def queue_message(
    name: str,
    *,
    rate_limit_per_second: float | None = None,
    rate_limit_burst: int = 0,
    max_concurrent: int = 0,
    max_concurrent_per_key: int = 0,
    retry_policy: task_pb2.RetryPolicy | None = None,
    timeout: timedelta | None = None,
) -> queue_pb2.Queue:
    queue = queue_pb2.Queue(
        name=name,
        max_concurrent=max_concurrent,
        max_concurrent_per_key=max_concurrent_per_key,
    )
    if rate_limit_per_second is not None:
        queue.rate_limit.per_second = rate_limit_per_second
        queue.rate_limit.burst = rate_limit_burst
    elif rate_limit_burst:
        raise ValueError("rate_limit_burst needs rate_limit_per_second")
    if retry_policy is not None:
        queue.retry_policy.CopyFrom(retry_policy)
    if timeout is not None:
        queue.timeout.CopyFrom(duration(timeout))
    return queue


def update_queue_request(name: str, changes: QueueChanges) -> pb.UpdateQueueRequest:
    """The queue with the changed fields set, and the mask that names them."""
    if not changes:
        raise ValueError("update_queue: name at least one setting to change")
    paths = {"rate_limit" if key.startswith("rate_limit") else key for key in changes}
    request = pb.UpdateQueueRequest(queue=queue_message(name, **changes))
    request.update_mask.paths.extend(sorted(paths))
    return request


class Purged(NamedTuple):
    """What purge_queue did: how many waiting tasks it cancelled, and the queue after."""

    cancelled_count: int
    queue: queue_pb2.Queue


class TemplateChanges(RetryOptions, total=False):
    """The fields of a schedule's task template update_schedule may change; a retry field
    given as None goes back to the default."""

    kind: str
    payload: Mapping[str, Any] | None
    queue: str
    priority: int | None
    """None: the default (5)."""
    concurrency_key: str
    timeout: timedelta | None
    """None: the queue's, then the kind's default."""


class ScheduleChanges(TemplateChanges, total=False):
    """The fields update_schedule may change: each one given is set (and named in the
    update_mask), the others stay as they are."""

    cron: str
    time_zone: str
    overlap: int
    """An OverlapPolicy value."""
    catchup_window: timedelta | None
    description: str


TEMPLATE_FIELDS = frozenset(TemplateChanges.__annotations__)


def task_template(
    kind: str,
    payload: Mapping[str, Any] | None,
    *,
    queue: str = "",
    priority: int | None = None,
    concurrency_key: str = "",
    timeout: timedelta | None = None,
    retry: RetryOptions | None = None,
) -> schedule_pb2.TaskTemplate:
    template = schedule_pb2.TaskTemplate(kind=kind, queue=queue, concurrency_key=concurrency_key)
    if payload:
        template.payload.CopyFrom(struct(payload))
    if priority is not None:
        template.priority = priority
    if retry:
        template.retry_policy.CopyFrom(retry_policy(**retry))
    if timeout is not None:
        template.timeout.CopyFrom(duration(timeout))
    return template


def schedule_message(
    cron: str,
    task: schedule_pb2.TaskTemplate,
    *,
    time_zone: str = "",
    overlap: int = schedule_pb2.OVERLAP_POLICY_UNSPECIFIED,
    catchup_window: timedelta | None = None,
    description: str = "",
    paused: bool = False,
) -> schedule_pb2.Schedule:
    schedule = schedule_pb2.Schedule(
        cron=cron,
        time_zone=time_zone,
        task=task,
        overlap=schedule_pb2.OverlapPolicy.ValueType(overlap),
        description=description,
        paused=paused,
    )
    if catchup_window is not None:
        schedule.catchup_window.CopyFrom(duration(catchup_window))
    return schedule


def changed_template(
    current: schedule_pb2.TaskTemplate, changes: ScheduleChanges
) -> schedule_pb2.TaskTemplate:
    """The schedule's template with the changes to it made (the rest as it is)."""
    template = schedule_pb2.TaskTemplate()
    template.CopyFrom(current)
    if "kind" in changes:
        template.kind = changes["kind"]
    if "payload" in changes:
        template.ClearField("payload")
        payload = changes["payload"]
        if payload:
            template.payload.CopyFrom(struct(payload))
    if "queue" in changes:
        template.queue = changes["queue"]
    if "priority" in changes:
        priority = changes["priority"]
        if priority is None:
            template.ClearField("priority")
        else:
            template.priority = priority
    if "concurrency_key" in changes:
        template.concurrency_key = changes["concurrency_key"]
    if not RETRY_FIELDS.isdisjoint(changes):
        template.retry_policy.CopyFrom(changed_policy(template.retry_policy, changes))
        if template.retry_policy == task_pb2.RetryPolicy():
            template.ClearField("retry_policy")
    if "timeout" in changes:
        timeout = changes["timeout"]
        template.ClearField("timeout")
        if timeout is not None:
            template.timeout.CopyFrom(duration(timeout))
    return template


def changed_policy(current: task_pb2.RetryPolicy, changes: RetryOptions) -> task_pb2.RetryPolicy:
    """The policy with each retry field named in `changes` set, or cleared when None."""
    fields: dict[str, Any] = dict(policy_fields(current))
    fields.update((name, value) for name, value in changes.items() if name in RETRY_FIELDS)
    return retry_policy(**fields)


def policy_fields(policy: task_pb2.RetryPolicy) -> RetryOptions:
    """The fields the policy sets, as retry_policy() takes them."""
    fields = RetryOptions()
    if policy.max_attempts:
        fields["max_attempts"] = policy.max_attempts
    if policy.HasField("initial_backoff"):
        fields["initial_backoff"] = policy.initial_backoff.ToTimedelta()
    if policy.HasField("max_backoff"):
        fields["max_backoff"] = policy.max_backoff.ToTimedelta()
    if policy.backoff_multiplier:
        fields["backoff_multiplier"] = policy.backoff_multiplier
    if policy.HasField("jitter"):
        fields["jitter"] = policy.jitter
    return fields


def update_schedule_request(
    schedule_id: str, changes: ScheduleChanges, template: schedule_pb2.TaskTemplate | None
) -> pb.UpdateScheduleRequest:
    """The schedule with the changed fields set, and the mask that names them. `template` is
    the schedule's current task template, with the changes to it already made (None when none
    of them changes it)."""
    if not changes:
        raise ValueError("update_schedule: name at least one field to change")
    schedule = schedule_pb2.Schedule(id=schedule_id)
    paths = set()
    if "cron" in changes:
        schedule.cron = changes["cron"]
        paths.add("cron")
    if "time_zone" in changes:
        schedule.time_zone = changes["time_zone"]
        paths.add("time_zone")
    if "description" in changes:
        schedule.description = changes["description"]
        paths.add("description")
    if "overlap" in changes:
        schedule.overlap = schedule_pb2.OverlapPolicy.ValueType(changes["overlap"])
        paths.add("overlap")
    if "catchup_window" in changes:
        window = changes["catchup_window"]
        if window is not None:
            schedule.catchup_window.CopyFrom(duration(window))
        paths.add("catchup_window")
    if template is not None:
        schedule.task.CopyFrom(template)
        paths.add("task")
    request = pb.UpdateScheduleRequest(schedule=schedule)
    request.update_mask.paths.extend(sorted(paths))
    return request


def touches_template(changes: ScheduleChanges) -> bool:
    return not TEMPLATE_FIELDS.isdisjoint(changes)


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def credentials(
    tls: bool, root_certificates: bytes | None, client_certificate: tuple[bytes, bytes] | None
) -> grpc.ChannelCredentials | None:
    """None for a plaintext channel. `client_certificate` is (private key, certificate chain)."""
    if not (tls or root_certificates or client_certificate):
        return None
    key, chain = client_certificate or (None, None)
    return grpc.ssl_channel_credentials(root_certificates, key, chain)


def same_event(a: pb.StreamStatusResponse | None, b: pb.StreamStatusResponse) -> bool:
    """A resubscribed stream starts with the current state: an event seen already (`a`: the
    last one of b's kind)."""
    if a is None:
        return False
    if b.kind == pb.TASK_EVENT_KIND_PROGRESS:
        return a.progress == b.progress
    return (a.status, a.attempt) == (b.status, b.attempt)


def is_progress(event: pb.StreamStatusResponse) -> bool:
    return event.kind == pb.TASK_EVENT_KIND_PROGRESS


BULK_DEADLINE_SECONDS = 300.0
"""A bulk action acts on every task it matches in turn: it gets longer than a unary call."""


class Selector(TypedDict, total=False):
    """What a bulk action matches tasks by (every field given must match)."""

    statuses: Iterable[int]
    kind: str
    queue: str
    schedule_id: str
    workflow_id: str
    created_after: datetime
    created_before: datetime
    finished_after: datetime
    finished_before: datetime
    error_type: str
    payload_contains: Mapping[str, Any]
    task_id_prefix: str


_SELECTOR_TIMES = {
    "created_after": "create_time_after",
    "created_before": "create_time_before",
    "finished_after": "finish_time_after",
    "finished_before": "finish_time_before",
}

BulkRequest = TypeVar("BulkRequest", pb.BatchCancelTasksRequest, pb.BatchRetryTasksRequest)


def bulk_request(request: BulkRequest, task_ids: Iterable[str], selector: Selector) -> BulkRequest:
    """The ids, or (with none) the selector as the request's filter."""
    request.task_ids.extend(task_ids)
    if request.task_ids:
        return request
    chosen = request.filter
    chosen.SetInParent()
    chosen.statuses.extend(task_pb2.TaskStatus.ValueType(s) for s in selector.get("statuses", ()))
    chosen.kind = selector.get("kind", "")
    chosen.queue = selector.get("queue", "")
    chosen.schedule_id = selector.get("schedule_id", "")
    chosen.workflow_id = selector.get("workflow_id", "")
    chosen.error_type = selector.get("error_type", "")
    chosen.task_id_prefix = selector.get("task_id_prefix", "")
    if "payload_contains" in selector:
        chosen.payload_contains.update(selector["payload_contains"])
    for name, field in _SELECTOR_TIMES.items():
        value = selector.get(name)
        if value is not None:
            getattr(chosen, field).FromDatetime(value)
    return request
