"""The Python client of the TaskService: `Client` (blocking) and `AsyncClient` (asyncio), over
the generated stubs, with the bearer token, TLS, deadlines and retries of UNAVAILABLE built in.

    from taskscheduler.client import Client

    with Client("127.0.0.1:50051", token=TOKEN) as tasks:
        task = tasks.schedule("demo.sleep", {"seconds": 1})
        done = tasks.wait(task.id, timeout=30)

Queues (`create_queue`, `pause_queue`, `purge_queue`, ...), cron schedules
(`create_schedule`, `trigger_schedule`, ...) and workflows are managed through the same
clients. A workflow is built as Celery's canvas is, or step by step:

    from taskscheduler.client import chain, chord, group, task

    flow = chain(task("demo.echo", {"n": 1}, name="fetch"),
                 chord([task("demo.echo", name="left"), task("demo.echo", name="right")],
                       task("demo.echo", name="join")))
    done = tasks.wait_workflow(tasks.create_workflow(flow).id)
"""

from taskscheduler.client._async import AsyncClient
from taskscheduler.client._canvas import Canvas, WorkflowPlan, chain, chord, group, task
from taskscheduler.client._common import (
    CHANNEL_OPTIONS,
    FINISHED,
    ClientError,
    Purged,
    QueueChanges,
    Retries,
    RetryOptions,
    ScheduleChanges,
    Selector,
    TaskNotFinished,
    WorkflowNotFinished,
    retry_policy,
    status_name,
    task_request,
    worker_state_name,
    workflow_status_name,
)
from taskscheduler.client._sync import Client
from taskscheduler.v1.queue_pb2 import Queue, QueueState, RateLimit
from taskscheduler.v1.schedule_pb2 import OverlapPolicy, Schedule, TaskTemplate
from taskscheduler.v1.task_pb2 import RetryPolicy, Task, TaskStatus
from taskscheduler.v1.task_service_pb2 import (
    BatchCancelTasksResponse,
    BatchRetryTasksResponse,
    WaitReason,
    WaitReasonCode,
)
from taskscheduler.v1.task_service_pb2 import ExplainTaskResponse as Explanation
from taskscheduler.v1.task_service_pb2 import StreamStatusResponse as StatusEvent
from taskscheduler.v1.task_service_pb2 import StreamWorkflowResponse as WorkflowEvent
from taskscheduler.v1.worker_pb2 import Worker, WorkerState
from taskscheduler.v1.workflow_pb2 import FailurePolicy, Workflow, WorkflowStatus, WorkflowStep

__all__ = [
    "CHANNEL_OPTIONS",
    "FINISHED",
    "AsyncClient",
    "BatchCancelTasksResponse",
    "BatchRetryTasksResponse",
    "Canvas",
    "Client",
    "ClientError",
    "Explanation",
    "FailurePolicy",
    "OverlapPolicy",
    "Purged",
    "Queue",
    "QueueChanges",
    "QueueState",
    "RateLimit",
    "Retries",
    "RetryOptions",
    "RetryPolicy",
    "Schedule",
    "ScheduleChanges",
    "Selector",
    "StatusEvent",
    "Task",
    "TaskNotFinished",
    "TaskStatus",
    "TaskTemplate",
    "WaitReason",
    "WaitReasonCode",
    "Worker",
    "WorkerState",
    "Workflow",
    "WorkflowEvent",
    "WorkflowNotFinished",
    "WorkflowPlan",
    "WorkflowStatus",
    "WorkflowStep",
    "chain",
    "chord",
    "group",
    "retry_policy",
    "status_name",
    "task",
    "task_request",
    "worker_state_name",
    "workflow_status_name",
]
